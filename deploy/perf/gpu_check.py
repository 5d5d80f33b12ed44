"""Per-model and end-to-end latency of the tiny image side on a GPU (run by deploy/gpu-check.sh).

With `tensorrt`: each image-side network is exported to ONNX and built into a TensorRT engine
(`t2iguard.export.trt.build_engine`: the spec's profile, fp16 on TensorRT 10) and timed with the
TensorRT runtime on torch CUDA buffers. Without it: the same torch modules on CUDA (fp32, then fp16
autocast). `--device cpu` runs the torch path on CPU (how this script is tested without a GPU).

End to end: the image path of one request: `steps` UNet calls of 2 rows (classifier-free guidance),
the VAE decode and the image classifier; the text encoder (MiniLM) is timed when its package is
installed. Prints a Markdown table; `--json` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from t2iguard.contract import specs as S
from t2iguard.contract.profiles import get_profile
from t2iguard.export.onnx_export import export_onnx, sample_inputs
from t2iguard.export.tiny import build_image_side


def _timed(fn, sync, iters: int) -> float:
    """Median milliseconds of `fn()` over `iters` runs after 3 warm-ups."""
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


class TorchRunner:
    def __init__(self, modules: dict, device: str, half: bool):
        self.device, self.half = device, half
        self.modules = {k: v.module.to(device) for k, v in modules.items()}
        self.label = f"torch {torch.__version__} {'fp16 autocast' if half else 'fp32'}"

    def __call__(self, name: str, inputs: dict[str, torch.Tensor]):
        spec = SPECS[name]
        with torch.no_grad(), torch.autocast(self.device, torch.float16, enabled=self.half):
            return self.modules[name](*(inputs[t.name] for t in spec.inputs))


class TensorRTRunner:
    def __init__(self, modules: dict, workdir: Path):
        import tensorrt as trt

        from t2iguard.export.trt import build_engine

        self.trt = trt
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.contexts, self.meta = {}, {}
        for name, built in modules.items():
            onnx = workdir / f"{name}.onnx"
            export_onnx(built.module, SPECS[name], onnx)
            meta = build_engine(onnx, SPECS[name], workdir / name / "model.plan", workdir / "timing.cache", print)
            engine = runtime.deserialize_cuda_engine((workdir / name / "model.plan").read_bytes())
            self.contexts[name], self.meta[name] = (engine, engine.create_execution_context()), meta
        self.stream = torch.cuda.current_stream()
        self.label = f"TensorRT {trt.__version__} {next(iter(self.meta.values())).precision}"

    def __call__(self, name: str, inputs: dict[str, torch.Tensor]):
        engine, ctx = self.contexts[name]
        spec = SPECS[name]
        batch = next(iter(inputs.values())).shape[0]
        for t in spec.inputs:
            ctx.set_input_shape(t.name, tuple(inputs[t.name].shape))
            ctx.set_tensor_address(t.name, inputs[t.name].data_ptr())
        outs = []
        for t in spec.outputs:
            out = torch.empty((batch, *t.dims), dtype=torch.float32, device="cuda")
            ctx.set_tensor_address(t.name, out.data_ptr())
            outs.append(out)
        ctx.execute_async_v3(self.stream.cuda_stream)
        return outs


SPECS = S.build_specs(get_profile("tiny"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--torch-only", action="store_true", help="skip TensorRT even where it is installed")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to torch")
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    modules = build_image_side(get_profile("tiny"))
    runners = []
    try:
        import tensorrt  # noqa: F401

        if args.device == "cuda" and not args.torch_only:
            runners.append(TensorRTRunner(modules, Path(tempfile.mkdtemp(prefix="t2iguard-trt-"))))
    except ImportError:
        print("tensorrt is not installed: timing the torch modules only")
    runners += [TorchRunner(modules, args.device, half=False)]
    if args.device == "cuda":
        runners.append(TorchRunner(build_image_side(get_profile("tiny")), args.device, half=True))
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    rows = []
    for runner in runners:
        per_model = {}
        for name, spec in SPECS.items():
            if name not in modules:
                continue
            inputs = {k: torch.from_numpy(v).to(args.device)
                      for k, v in sample_inputs(spec, batch=spec.opt_batch).items()}
            per_model[name] = _timed(lambda r=runner, n=name, i=inputs: r(n, i), sync, args.iters)
        unet_in = {k: torch.from_numpy(v).to(args.device) for k, v in sample_inputs(SPECS[S.UNET], batch=2).items()}
        dec_in = {k: torch.from_numpy(v).to(args.device) for k, v in sample_inputs(SPECS[S.VAE_DECODER], 1).items()}
        cls_in = {k: torch.from_numpy(v).to(args.device)
                  for k, v in sample_inputs(SPECS[S.IMAGE_CLASSIFIER], 1).items()}

        def request(r=runner, ui=unet_in, di=dec_in, ci=cls_in):
            for _ in range(args.steps):
                r(S.UNET, ui)
            r(S.VAE_DECODER, di)
            r(S.IMAGE_CLASSIFIER, ci)

        e2e = _timed(request, sync, max(3, args.iters // 4))
        rows.append({"runner": runner.label, "per_model_ms": per_model, "image_path_ms": e2e})
    lines = [f"Device: {device_name}; {args.steps} steps; median of {args.iters} runs (batch = one request's rows)",
             "", "| model | " + " | ".join(r["runner"] for r in rows) + " |", "|---" * (len(rows) + 1) + "|"]
    for name in rows[0]["per_model_ms"]:
        lines.append(f"| {name} | " + " | ".join(f"{r['per_model_ms'][name]:.2f} ms" for r in rows) + " |")
    lines.append(f"| image path ({args.steps} UNet steps + decode + classify) | "
                 + " | ".join(f"{r['image_path_ms']:.1f} ms" for r in rows) + " |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"device": device_name, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
