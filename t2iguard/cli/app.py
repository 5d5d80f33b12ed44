"""`t2iguard`: build, serve, generate, screen, demo.

Exit codes follow the error table (`t2iguard.contract.errors`): 0 allowed/rewritten, 3 refused,
2 bad input, 1 any other error.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from t2iguard.contract.errors import BAD_INPUT, OTHER, REFUSED, T2IGuardError

app = typer.Typer(help="Text-to-image with a layered safety stack, served by NVIDIA Triton.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
err = Console(stderr=True, soft_wrap=True)  # log lines stay whole for log collectors
DEFAULT_REPOSITORY = Path("build/repository/cpu")

Url = Annotated[str, typer.Option("--url", help="Triton gRPC endpoint host:port.")]


def _fail(e: Exception) -> typer.Exit:
    code = e.kind.exit_code if isinstance(e, T2IGuardError) else OTHER.exit_code
    err.print(f"[red]error:[/red] {e}")
    return typer.Exit(code)


def _build(profile: str, target: str, out: Path, policy: Path | None = None, force: bool = False,
           weights: Path | None = None, nudenet: Path | None = None) -> Path:
    logging.getLogger("torch").setLevel(logging.ERROR)
    from t2iguard.export.build import build_repository

    with err.status("building model repository") as status:
        result = build_repository(profile, target, out, policy=policy, force=force,
                                  progress=lambda m: status.update(m), weights=weights, nudenet=nudenet)
    for name in result.exported:
        err.print(f"  exported {name}: ONNX vs its source max abs diff {result.parity[name]:.1e} "
                  f"({result.weights[name]})")
    err.print(f"repository ready at {result.path} ({result.seconds:.0f}s)")
    return result.path


@app.command()
def build(
    profile: Annotated[str, typer.Option(help="`tiny` (embedded default, ShapeWorld-trained) or a Stable Diffusion "
                                              "checkpoint kind: `sd15`, `sd-turbo` (needs --weights).")] = "tiny",
    target: Annotated[str, typer.Option(help="cpu (python backend + onnxruntime), onnx (onnxruntime_onnx) "
                                             "or trt (tensorrt_plan: fp16 engines built on this machine's GPU "
                                             "with the `tensorrt` package).")] = "cpu",
    out: Annotated[Path | None, typer.Option(help="Repository directory (default: build/repository/TARGET).")] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy YAML to ship (default: the bundled policy).")] = None,
    force: Annotated[bool, typer.Option(help="Re-export ONNX even when sources are unchanged.")] = False,
    weights: Annotated[Path | None, typer.Option(help="Checkpoint directory in Hugging Face layout (unet/, vae/, "
                                                      "text_encoder/, tokenizer/, safety_checker/) for sd profiles.")]
    = None,
    nudenet: Annotated[str | None, typer.Option(
        help="Add NudeNet's detector to image_guard: the path of its 320n.onnx, or `installed` for the one in the "
             "`nudenet` package (`pip install --no-deps nudenet==3.4.2`). Its scores count as `nudity`.")] = None,
) -> None:
    """Export every model to ONNX (parity-checked) and render the Triton repository for TARGET."""
    from t2iguard.export.nudenet import installed_detector
    from t2iguard.export.trt import TensorRTUnavailable

    try:
        if profile != "tiny" and weights is None:
            raise ValueError(f"profile {profile!r} loads a checkpoint: pass --weights DIR (Hugging Face layout)")
        detector = None if nudenet is None else installed_detector() if nudenet == "installed" else Path(nudenet)
        _build(profile, target, out or Path("build/repository") / target, policy, force, weights, detector)
    except (ValueError, FileNotFoundError) as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(BAD_INPUT.exit_code) from None
    except TensorRTUnavailable as e:
        err.print(f"[red]error:[/red] configs rendered, TensorRT engines not built: {e}")
        raise typer.Exit(OTHER.exit_code) from None


@app.command()
def serve(
    repository: Annotated[Path, typer.Option(help="Model repository (built first when missing).")] = DEFAULT_REPOSITORY,
    grpc_port: int = 8001, http_port: int = 8000, metrics_port: int = 8002,
    explicit: Annotated[bool, typer.Option(help="Explicit model control (load/unload over the API).")] = False,
) -> None:
    """Run tritonserver on the CPU target until Ctrl-C / SIGTERM."""
    from t2iguard.triton.server import Ports, TritonServer

    if not (repository / "build.json").exists():
        _build("tiny", "cpu", repository)
    server = TritonServer(repository, Ports(grpc_port, http_port, metrics_port), explicit=explicit)

    def _terminate(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)  # before starting: a SIGTERM during start-up stops cleanly too
    try:
        with err.status("starting tritonserver"):
            seconds = server.start()
        err.print(f"ready in {seconds:.1f}s: gRPC localhost:{grpc_port}, HTTP localhost:{http_port}, "
                  f"metrics http://localhost:{metrics_port}/metrics (log: {server.log_path})")
        code = server.wait()
        err.print(f"tritonserver exited with {code}")
        raise typer.Exit(1 if code else 0)
    except RuntimeError as e:
        raise _fail(e) from None
    except KeyboardInterrupt:
        err.print("shutting down")
    finally:
        server.stop()


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    negative_prompt: Annotated[str | None, typer.Option(help="What to steer away from.")] = None,
    image: Annotated[Path | None, typer.Option(help="Source image to edit (PNG/JPEG); needs --mask.")] = None,
    mask: Annotated[Path | None, typer.Option(help="Mask image: white = repaint.")] = None,
    seed: Annotated[int | None, typer.Option(help="Noise seed (default: random, reported).")] = None,
    steps: Annotated[int | None, typer.Option(help="Denoising steps, 1-50 (default: 20).")] = None,
    guidance_scale: Annotated[float | None, typer.Option(help="Classifier-free guidance, 0-20 (default: 5).")] = None,
    url: Url = "localhost:8001",
    out: Annotated[Path, typer.Option(help="Where <id>.png and <id>.json go.")] = Path("outputs"),
) -> None:
    """Generate one image through the safety stack; exit 0 allowed/rewritten, 3 refused, 2 bad input."""
    from t2iguard.client import SafeT2IClient

    try:
        with SafeT2IClient(url) as client:
            result = client.generate(prompt, negative_prompt=negative_prompt, image=image, mask=mask, seed=seed,
                                     steps=steps, guidance_scale=guidance_scale)
    except (T2IGuardError, OSError) as e:
        raise _fail(e) from None
    paths = result.save(out)
    r = result.report
    why = f" ({r.refusal.message})" if r.refusal else ""
    typer.echo(f"{result.decision}{why}: {' '.join(str(p) for p in paths)}")
    raise typer.Exit(REFUSED.exit_code if result.refused else 0)


def _run_prompts(input: Path, url: str, call, jsonl: bool) -> list | None:
    """Read one prompt per line (`-`: stdin), run `call(client, prompts)`; with `jsonl` print one
    JSON object per result and return None, else return the results for a table."""
    from t2iguard.client import SafeT2IClient

    text = sys.stdin.read() if str(input) == "-" else input.read_text(encoding="utf-8")
    prompts = [line for line in text.splitlines() if line.strip()]
    try:
        with SafeT2IClient(url) as client:
            results = call(client, prompts)
    except T2IGuardError as e:
        raise _fail(e) from None
    if not jsonl:
        return results
    for r in results:
        typer.echo(json.dumps(r.as_json(), ensure_ascii=False))
    return None


@app.command()
def screen(
    input: Annotated[Path, typer.Option("--input", help="One prompt per line; `-` reads stdin.")],
    url: Url = "localhost:8001",
    jsonl: Annotated[bool, typer.Option(help="One JSON object per line instead of a table.")] = False,
) -> None:
    """Screen prompts with the prompt_guard ensemble only (no generation)."""
    results = _run_prompts(input, url, lambda client, prompts: client.screen(prompts), jsonl)
    if results is None:
        return
    from rich.table import Table

    table = Table("prompt", "decision", "flagged", "top score")
    for r in results:
        top = max(r.screen.scores.items(), key=lambda kv: kv[1])
        table.add_row(r.prompt, r.decision, ", ".join(r.screen.flagged) or "-", f"{top[0]} {top[1]:.2f}")
    Console().print(table)


@app.command()
def rewrite(
    input: Annotated[Path, typer.Option("--input", help="One prompt per line; `-` reads stdin.")],
    seed: Annotated[int, typer.Option(help="Seed for diversity sampling and grounding scenes.")] = 0,
    url: Url = "localhost:8001",
    jsonl: Annotated[bool, typer.Option(help="One JSON object per line instead of a table.")] = False,
) -> None:
    """Run prompts through the prompt_rewrite ensemble only: diversity, anonymisation, grounding."""
    results = _run_prompts(input, url, lambda client, prompts: client.rewrite(prompts, seed=seed), jsonl)
    if results is None:
        return
    from rich.table import Table

    table = Table("prompt", "rewritten", "rewrites")
    for r in results:
        table.add_row(r.prompt, r.rewritten if r.rewrites else "(unchanged)",
                      "; ".join(f"{w.kind}: {w.original!r} -> {w.replacement!r}" for w in r.rewrites) or "-")
    Console().print(table)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where images, reports and grid.png go.")] = Path("outputs"),
    repository: Annotated[Path, typer.Option(help="Repository to build and serve.")] = DEFAULT_REPOSITORY,
    steps: int = 20,
    seed: int = 0,
) -> None:
    """Build the tiny repository, serve it, send sample requests, write outputs, stop."""
    from t2iguard.cli.demo import run_demo

    _build("tiny", "cpu", repository)
    try:
        run_demo(repository, out, seed=seed, steps=steps, console=Console())
    except (RuntimeError, T2IGuardError) as e:
        raise _fail(e) from None


@app.command()
def bench(
    model: Annotated[str, typer.Option(help="Model to load: safe_t2i, prompt_guard, image_guard, ...")],
    input_data: Annotated[Path, typer.Option(help="perf_analyzer --input-data JSON (deploy/perf/inputs.py).")],
    concurrency: Annotated[str, typer.Option(help="Comma-separated concurrency levels.")] = "1,4,16,64",
    duration: Annotated[float, typer.Option(help="Measured seconds per level (after a 2 s warm-up).")] = 10.0,
    url: Url = "localhost:8001",
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write perf_analyzer-style CSV here.")] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", help="Write a throughput/latency plot here.")] = None,
) -> None:
    """Load-test a served model over gRPC; prints and writes perf_analyzer's CSV columns."""
    from rich.progress import Progress
    from rich.table import Table

    from t2iguard.cli import bench as B

    levels_in = [int(c) for c in concurrency.split(",") if c.strip()]
    if not levels_in or min(levels_in) < 1:
        err.print(f"[red]error:[/red] --concurrency must list positive integers, got {concurrency!r}")
        raise typer.Exit(BAD_INPUT.exit_code)
    try:
        with Progress(console=err) as progress:
            task = progress.add_task(f"{model} at concurrency {concurrency}", total=len(levels_in))
            levels = B.bench(url, model, input_data, levels_in, duration,
                             progress=lambda done, total: progress.update(task, completed=done))
    except Exception as e:  # noqa: BLE001 - connection or model errors, reported with exit 1
        raise _fail(e) from None
    table = Table(*B.CSV_COLUMNS, title=f"{model} (latencies and server times in microseconds)")
    for level in levels:
        table.add_row(*(str(v) for v in level.row().values()))
    Console().print(table)
    if csv_out:
        B.write_csv(levels, csv_out)
    if plot_out:
        B.plot(levels, model, plot_out)


train_app = typer.Typer(help="Train the tiny profile's models on the project's own data.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure models against baselines; Markdown report, JSON figures and a plot.",
                       no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")


@train_app.command("prompt-classifier")
def train_prompt_classifier(
    seed: Annotated[int, typer.Option(help="Seed of the data generator and of training.")] = 0,
    epochs: Annotated[int, typer.Option(help="Passes over the training split.")] = 2,
) -> None:
    """Fine-tune MiniLM adapters + head; write export/weights/prompt_classifier.safetensors and the
    calibrated thresholds into the bundled policy. Rebuild the repository afterwards."""
    from t2iguard.training.train_prompt_classifier import train

    with err.status("training prompt classifier") as status:
        result = train(seed=seed, epochs=epochs, say=lambda m: status.update(m))
    err.print(f"{result.examples} prompts, {result.seconds:.0f}s -> {result.weights}")
    err.print(f"validation: {json.dumps(result.val)}")
    err.print(f"thresholds written to the policy: {json.dumps(result.thresholds)}")


@train_app.command("rewriter")
def train_rewriter(seed: Annotated[int, typer.Option(help="Seed of the data generator and of training.")] = 0) -> None:
    """Train the rewrite tagger's heads; write export/weights/rewrite_tagger.safetensors."""
    from t2iguard.training.train_rewriter import train

    with err.status("training rewrite tagger") as status:
        result = train(seed=seed, say=lambda m: status.update(m))
    err.print(f"{result.examples} prompts, {result.seconds:.0f}s -> {result.weights}; {json.dumps(result.val)}")


@train_app.command("shapeworld")
def train_shapeworld(
    phase: Annotated[list[str], typer.Option(
        help="Training phases, run in the order given (default: the committed weights' chain, vae vae-decoder unet "
             "unet-more unet-position guard vae-heads classifiers; `unet-vpred` is optional, see the "
             "README).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the ShapeWorld draw and of training.")] = 0,
    threads: Annotated[int, typer.Option(help="torch threads (run independent phases side by side with 1 each).")] = 2,
    quick: Annotated[bool, typer.Option(help="A few steps on little data: checks the script, trains nothing.")] = False,
) -> None:
    """Train the tiny image side on ShapeWorld; write export/weights/*.safetensors (fp16) and the held-out
    figures to export/weights/shapeworld.json. About 3.8 hours on 2 CPU cores (the default phases). Rebuild
    afterwards."""
    import torch

    from t2iguard.training.train_shapeworld import DEFAULT_PHASES, PHASES, Recipe, train

    torch.set_num_threads(threads)
    recipe = Recipe(seed=seed)
    recipe = recipe.quick() if quick else recipe
    for name in phase or list(DEFAULT_PHASES):
        if name not in PHASES:
            raise typer.BadParameter(f"unknown phase {name!r}; known: {', '.join(PHASES)}", param_hint="--phase")
        with err.status(f"training {name}") as status:  # a log line per message when stderr is not a terminal
            figures = train(name, recipe, say=status.update if err.is_terminal else err.print)
        err.print(f"{name}: {json.dumps(figures)}")


def _evaluate(repository: Path, out: Path, evaluate) -> None:
    """Build when needed, run `evaluate(repository, out, say=...)`, print the report it wrote."""
    if not (repository / "build.json").exists():
        _build("tiny", "cpu", repository)
    with err.status("evaluating") as status:
        evaluate(repository, out, say=lambda m: status.update(m))
    typer.echo((out / "report.md").read_text())
    err.print(f"written: {out / 'report.md'}, {out / 'metrics.json'}, {out / 'plot.png'}")


@eval_app.command("prompt-classifier")
def eval_prompt_classifier(
    repository: Annotated[Path, typer.Option(help="Built repository to evaluate.")] = DEFAULT_REPOSITORY,
    out: Annotated[Path, typer.Option(help="Where report.md, metrics.json, plot.png go.")] =
        Path("build/eval/prompt-classifier"),
) -> None:
    """The served prompt_guard (in-process) vs the better-profanity blocklist, on held-out sets."""
    from t2iguard.evaluation.prompt_classifier import evaluate

    _evaluate(repository, out, evaluate)


@eval_app.command("rewriter")
def eval_rewriter(
    repository: Annotated[Path, typer.Option(help="Built repository to evaluate.")] = DEFAULT_REPOSITORY,
    out: Annotated[Path, typer.Option(help="Where report.md, metrics.json, plot.png go.")] =
        Path("build/eval/rewriter"),
    seeds: Annotated[int, typer.Option(help="Seeded requests per occupation prompt.")] = 500,
) -> None:
    """Diversity, no-op precision, anonymisation recall and grounding of the rewriter (in-process)."""
    from t2iguard.evaluation.rewriter import evaluate

    _evaluate(repository, out, lambda r, o, say: evaluate(r, o, seeds=seeds, say=say))


@eval_app.command("regeneration")
def eval_regeneration(
    repository: Annotated[Path, typer.Option(help="Built repository to evaluate.")] = DEFAULT_REPOSITORY,
    out: Annotated[Path, typer.Option(help="Directory for report.md, metrics.json, grid.png, plot.png.")] = (
        Path("build/eval/regeneration")),
    requests: Annotated[int, typer.Option(min=1, help="Requests per set (benign prompts with the unintended "
                                                      "harm; beautify edits).")] = 200,
    attempts: Annotated[int, typer.Option(min=1, max=8, help="Regenerations allowed after the first attempt "
                                                             "(the policy allows 0-8; 0 measures nothing).")] = 4,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures to this JSON file.")] = None,
    seed: Annotated[int, typer.Option(help="First ShapeWorld seed of the request draws (7000: the reported "
                                           "set; tune guidance presets on another range, e.g. 9000).")] = 7000,
    methods: Annotated[str, typer.Option(help="Comma-separated: sld, classifier, reseed (unguided, fresh "
                                              "noise: the baseline).")] = "sld,classifier,reseed",
) -> None:
    """Guided regeneration (SLD vs classifier guidance vs unguided reseeding) on ShapeWorld: flagged rate
    before/after, refusals, attribute retention, latency; with a before/after picture grid and a plot."""
    from t2iguard.evaluation.regeneration import METHODS, evaluate

    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    if not chosen or set(chosen) - set(METHODS):
        raise typer.BadParameter(f"{methods!r}: choose from {', '.join(METHODS)}", param_hint="--methods")

    def run(r: Path, o: Path, say) -> None:
        results = evaluate(r, o, n=requests, attempts=attempts, seed=seed, methods=chosen, say=say)
        if json_out is not None:
            json_out.write_text(json.dumps(results, indent=2))

    _evaluate(repository, out, run)


if __name__ == "__main__":
    app()
