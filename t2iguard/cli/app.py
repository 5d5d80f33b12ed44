"""`t2iguard`: build, serve, generate, screen, demo.

Exit codes follow the error table (`t2iguard.contract.errors`): 0 allowed/rewritten, 3 refused,
2 bad input, 1 any other error; `verify`: 0 marked, 5 not marked, 2 unreadable.
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

from t2iguard.cli.data import app as data_app
from t2iguard.cli.redteam import redteam
from t2iguard.cli.verify import verify
from t2iguard.contract.errors import BAD_INPUT, OTHER, REFUSED, T2IGuardError
from t2iguard.evaluation.report_all import SECTIONS, sizes_help

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
           weights: Path | None = None, nudenet: Path | None = None, audit_log: str = "audit.jsonl") -> Path:
    logging.getLogger("torch").setLevel(logging.ERROR)
    from t2iguard.export.build import build_repository

    with err.status("building model repository") as status:
        result = build_repository(profile, target, out, policy=policy, force=force, audit_log=audit_log,
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
    audit_log: Annotated[str, typer.Option(
        help="Where the orchestrator appends its audit events: relative to the repository, or absolute; "
             "${VAR} expands at serve time (a read-only repository in Kubernetes: /audit/${POD_NAME}.jsonl "
             "on a volume of its own).")] = "audit.jsonl",
) -> None:
    """Export every model to ONNX (parity-checked) and render the Triton repository for TARGET."""
    from t2iguard.export.nudenet import installed_detector
    from t2iguard.export.trt import TensorRTUnavailable

    try:
        if profile != "tiny" and weights is None:
            raise ValueError(f"profile {profile!r} loads a checkpoint: pass --weights DIR (Hugging Face layout)")
        detector = None if nudenet is None else installed_detector() if nudenet == "installed" else Path(nudenet)
        _build(profile, target, out or Path("build/repository") / target, policy, force, weights, detector,
               audit_log)
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
    health_port: Annotated[int, typer.Option(help="HTTP port of /ready (a canary through every guard and the "
                                                  "orchestrator) and /live, for Kubernetes probes; 0: none.")] = 8003,
    heal: Annotated[bool, typer.Option(help="Reload a model whose python stub died (explicit model control; the "
                                            "canary finds it).")] = True,
) -> None:
    """Run tritonserver on the CPU target until Ctrl-C / SIGTERM, with a deep health check and self-healing:
    Triton does not restart a python stub that died, and its own health API does not see one."""
    from t2iguard.triton.health import HealthMonitor
    from t2iguard.triton.server import Ports, TritonServer

    if not (repository / "build.json").exists():
        _build("tiny", "cpu", repository)
    server = TritonServer(repository, Ports(grpc_port, http_port, metrics_port), explicit=True)
    monitor = None

    def _terminate(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)  # before starting: a SIGTERM during start-up stops cleanly too
    try:
        with err.status("starting tritonserver"):
            seconds = server.start()
        monitor = HealthMonitor(server.grpc_url, repository, port=health_port, heal=heal).start()
        err.print(f"ready in {seconds:.1f}s: gRPC localhost:{grpc_port}, HTTP localhost:{http_port}, "
                  f"metrics http://localhost:{metrics_port}/metrics, health http://localhost:{health_port}/ready "
                  f"(heal: {'on' if heal else 'off'}; log: {server.log_path})")
        code = server.wait()
        err.print(f"tritonserver exited with {code}")
        raise typer.Exit(1 if code else 0)
    except RuntimeError as e:
        raise _fail(e) from None
    except KeyboardInterrupt:
        err.print("shutting down")
    finally:
        if monitor:
            monitor.stop()
        server.stop()


@app.command()
def health(
    repository: Annotated[Path, typer.Option(help="The repository the server serves (its profile.json).")] = (
        DEFAULT_REPOSITORY),
    url: Url = "localhost:8001",
    port: Annotated[int, typer.Option(help="HTTP port of /ready and /live.")] = 8003,
    period: Annotated[float, typer.Option(help="Seconds between canaries (and the cache of /ready).")] = 5.0,
    heal: Annotated[bool, typer.Option(help="Reload the models a failed canary names (the server must run "
                                            "with --model-control-mode=explicit).")] = True,
) -> None:
    """Deep health and self-healing beside a tritonserver started elsewhere (a Kubernetes sidecar): /ready
    answers 200 only while a canary passes every guard ensemble and the orchestrator; /live answers 503 once
    3 heals in a row failed, so the kubelet restarts the pod."""
    from t2iguard.triton.health import HealthMonitor

    monitor = HealthMonitor(url, repository, port=port, period_s=period, heal=heal).start()
    err.print(f"health: http://0.0.0.0:{port}/ready and /live, canary every {period:g}s against {url}")
    try:
        signal.signal(signal.SIGTERM, lambda *_: monitor.stop())
        monitor.wait()
    except KeyboardInterrupt:
        monitor.stop()


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


@app.command("filter-dataset")
def filter_dataset(
    dataset: Annotated[Path, typer.Argument(
        help="A folder of images with same-stem .txt captions (and optional .json attributes), a CSV manifest "
             "(columns image, caption[, id], any others are attributes), or WebDataset .tar shards (a file or a "
             "folder of them: <key>.png|jpg + <key>.txt [+ <key>.json]).", show_default=False)],
    out: Annotated[Path, typer.Option(help="Where kept.csv, removed.csv, weights.csv and stats.json go.")] = (
        Path("build/filter")),
    repository: Annotated[Path, typer.Option(help="Built repository run in-process (built when missing); with "
                                                  "--url, the served repository (its profile.json and "
                                                  "policy.yaml).")] = DEFAULT_REPOSITORY,
    url: Annotated[str | None, typer.Option("--url", help="Score through a served stack (Triton gRPC host:port) "
                                                          "instead of in-process.")] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy YAML whose thresholds decide (default: the "
                                                     "repository's policy.yaml).")] = None,
    balance_by: Annotated[list[str] | None, typer.Option(
        "--balance-by", help="Attribute to rebalance (a manifest column or sidecar key); repeat it for several: "
                             "their joint values are balanced.")] = None,
    max_weight: Annotated[float, typer.Option(min=1.0, help="Clip of the rebalancing weights.")] = 10.0,
    plot_out: Annotated[Path | None, typer.Option("--plot", help="Also write a PNG of each balanced attribute's "
                                                                 "shares: before, after, weighted.")] = None,
) -> None:
    """Filter an image-caption dataset for pre-training: the prompt classifier on captions and the image
    classifier on images (in-process, or served with --url), batched; a row is removed when a category's score
    reaches the policy's threshold (prompt or image) under an acting rule (not `log`). Unreadable rows are
    removed with their reason. With --balance-by, weights.csv holds importance weights p_before/p_after of each
    kept row's attribute values (clipped at --max-weight) so that the weighted kept set has the attribute
    distribution the dataset had before filtering (what DALL-E 2's filtered data lacked).

    Exit codes: 0 done; 2 bad input (no such dataset, an unknown form or attribute); 1 a guard failed."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from t2iguard.cli import filter as F
    from t2iguard.contract import specs as S
    from t2iguard.contract.policy import load_policy
    from t2iguard.contract.profiles import load_profile
    from t2iguard.runtime.runners import LocalRunner, ModelCallError

    try:
        data = F.open_dataset(dataset)
        if url is None and not (repository / "build.json").exists():
            _build("tiny", "cpu", repository)
        profile = load_profile(repository)
        rules = load_policy(policy or repository / "policy.yaml")
    except (FileNotFoundError, ValueError) as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(BAD_INPUT.exit_code) from None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    client = None
    try:
        if url is None:
            runner = LocalRunner(repository, profile, rules)
            guards = F.Guards(runner.infer, profile, rules, runner.specs[S.PROMPT_GUARD].max_batch_size,
                              runner.specs[S.IMAGE_GUARD].max_batch_size)
        else:
            from t2iguard.client import SafeT2IClient

            client = SafeT2IClient(url, client_id="filter-dataset")
            guards = F.Guards(client.infer, profile, rules, client.max_batch(S.PROMPT_GUARD),
                              client.max_batch(S.IMAGE_GUARD))
        with Progress(*columns, console=err) as bar:
            task = bar.add_task(f"screening {data.form} {dataset}", total=data.total)
            summary = F.filter_dataset(data, guards, out, tuple(balance_by or ()), max_weight,
                                       progress=lambda n: bar.advance(task, n))
    except ValueError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(BAD_INPUT.exit_code) from None
    except (T2IGuardError, ModelCallError, OSError) as e:  # a guard failed, or --out cannot be written
        raise _fail(e) from None
    finally:
        if client is not None:
            client.close()
    st = summary.stats
    console = Console()
    head = Table(title=f"{dataset}: {st['rows']} rows, {st['seconds']} s ({st['rows_per_s']} rows/s), "
                       f"policy {st['policy_version']}")
    for col in ("kept", "removed", "unreadable", "duplicates", "by prompt", "by image", "by both"):
        head.add_column(col, justify="right")
    head.add_row(*(str(v) for v in (st["kept"], st["removed"], st["unreadable"], st["duplicates"],
                                     *st["removed_by"].values())))
    console.print(head)
    if st["categories"]:
        cats = Table("category", "removed by prompt", "by image", "either", title="removals per category")
        for c, n in st["categories"].items():
            cats.add_row(c, str(n["prompt"]), str(n["image"]), str(n["either"]))
        console.print(cats)
    if summary.balance is not None:
        b = summary.balance
        shares = Table("attribute", "value", "before", "after filtering", "after rebalancing (weighted)",
                       title=f"rebalancing by {', '.join(b.by)} (weights clipped at {b.max_weight:g}; "
                             f"{len(b.clipped)} cell(s) clipped, {len(b.lost)} lost; effective rows "
                             f"{b.effective_rows:.0f} of {st['kept']})")
        for attr, value, before, after, weighted in F.shares_table(b):
            shares.add_row(attr, value, f"{100 * before:.1f}%", f"{100 * after:.1f}%", f"{100 * weighted:.1f}%")
        console.print(shares)
        if plot_out:
            F.plot(b, plot_out, f"{data.form} dataset {dataset.name}: {st['rows']} rows, {st['removed']} removed, "
                                f"weights clipped at {b.max_weight:g}")
    elif plot_out:
        err.print("no plot written: --plot shows the --balance-by attributes, and none was given")
    written = ", ".join(str(out / f) for f in ("kept.csv", "removed.csv", "weights.csv", "stats.json"))
    err.print(f"written: {written}" + (f", {plot_out}" if plot_out and summary.balance else ""))


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
app.add_typer(data_app, name="data")
app.command()(redteam)
app.command()(verify)


def _classifier_file(path: Path, hint: str) -> None:
    """Raise BadParameter (naming `hint`) unless `path` is a prompt-classifier file this code loads: checked in a
    second, before minutes of corpus reading."""
    from t2iguard.export.tiny import check_classifier_file

    try:
        check_classifier_file(path)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=hint) from None


@train_app.command("prompt-classifier")
def train_prompt_classifier(
    seed: Annotated[int, typer.Option(help="Seed of the data generator and of training.")] = 0,
    epochs: Annotated[int, typer.Option(help="Passes over the training split.")] = 2,
    data: Annotated[str, typer.Option(help="corpus: the public sources in the cache (`t2iguard data import`) with "
                                           "the project's templates, twins and hard negatives (the shipped model); "
                                           "templates: the project's template generator only (the recipe before "
                                           "issue 21); corpus-no-templates: the corpus without the template "
                                           "generator's training rows (validation and test keep them; measured "
                                           "2026-12-07: far fewer benign scenes flagged, far fewer attacks caught, "
                                           "docs/2026-12-03-prompt-guard-real-data.md); corpus-template-twins: "
                                           "the corpus with every unsafe template row followed by its benign "
                                           "counterpart (training/data/template_twins.py; measured 2026-12-07: "
                                           "far fewer benign scenes flagged, still some attacks missed; not "
                                           "shipped).")] = "corpus",
    adapter: Annotated[str, typer.Option(help="qv-r8: LoRA r=8 on attention query/value (about 350 KB); full-r32 / "
                                              "full-r8: every encoder weight fine-tuned, the change cut to that rank "
                                              "by truncated SVD (2.7 / 0.7 MB; about twice as long to train).")]
    = "qv-r8",
    max_steps: Annotated[int | None, typer.Option(min=1, help="Stop after this many steps of 64 prompts (the "
                                                              "leave-one-source-out folds train 150; default: "
                                                              "every epoch).")] = None,
    head_init: Annotated[str, typer.Option(help="random: the head starts untrained (the shipped recipe); probe: "
                                                "LP-FT, the head is first fitted on the frozen encoder's cached "
                                                "embeddings (minutes on a first run), then fine-tuned with the "
                                                "adapters.")] = "random",
    init: Annotated[Path | None, typer.Option(help="Continue from this trained file (its adapters, rank and head, "
                                                    "at a fifth of the learning rate) instead of starting afresh; "
                                                    "the result can be souped with it (`t2iguard train "
                                                    "prompt-soup`). Takes no --head-init or --adapter, and needs "
                                                    "an --out other than this file.")] = None,
    pair_weight: Annotated[float, typer.Option(min=0.0, help="Weight of the twins' ranking loss: each step also "
                                                             "draws 8 twin pairs and pays softplus(benign logit - "
                                                             "unsafe logit) on the unsafe side's categories (0: "
                                                             "cross-entropy only, the shipped recipe). Measured at 1 "
                                                             "by leave-one-source-out: it ranks tweets and comments "
                                                             "from unseen sources worse (docs/2026-12-03-prompt-guard"
                                                             "-real-data.md, 2026-12-07 afternoon).")] = 0.0,
    pair_sides: Annotated[str, typer.Option(help="Which side of a twin pair the ranking loss moves: both, or benign "
                                                 "(the unsafe side's logit a fixed target, left to cross-entropy).")]
    = "both",
    swap_weight: Annotated[float, typer.Option(min=0.0, help="Weight of counterfactual logit pairing: each step "
                                                             "also draws 8 benign rows that name a group and pays "
                                                             "the mean absolute difference of their logits from "
                                                             "the same text naming people of no protected identity "
                                                             "(0: off, the shipped recipe).")] = 0.0,
    swap_categories: Annotated[str, typer.Option(help="The categories whose logits the swap term pairs, comma-"
                                                      "separated (e.g. hate,harassment), or all.")] = "all",
    out: Annotated[Path | None, typer.Option(help="Where the weights are written (default: the shipped file, "
                                                   "export/weights/prompt_classifier.safetensors).")] = None,
    policy: Annotated[Path | None, typer.Option(help="The policy file the calibrated thresholds go into, as a new "
                                                      "version (default: the bundled policy).")] = None,
) -> None:
    """Fine-tune MiniLM (adapters or, cut to a low rank, every weight) + head; write
    export/weights/prompt_classifier.safetensors and the calibrated thresholds into the bundled policy (a new
    policy version). Resumes an interrupted run from its checkpoint in the cache. About 40 minutes on 2 CPU cores
    (corpus, qv-r8). Rebuild the repository afterwards."""
    from safetensors import SafetensorError

    from t2iguard.contract.taxonomy import CATEGORIES
    from t2iguard.export.tiny import PROMPT_CLASSIFIER_CHECKPOINT, SHIPPABLE
    from t2iguard.training.train_prompt_classifier import DATASETS, HEAD_INITS, PAIR_SIDES, train, warm_start

    if head_init not in HEAD_INITS:
        raise typer.BadParameter(f"--head-init must be one of {', '.join(HEAD_INITS)}, not {head_init!r}")
    if data not in DATASETS:
        raise typer.BadParameter(f"--data must be one of {', '.join(DATASETS)}, not {data!r}")
    if pair_sides not in PAIR_SIDES:
        raise typer.BadParameter(f"--pair-sides must be one of {', '.join(PAIR_SIDES)}, not {pair_sides!r}")
    swap_on = None if swap_categories == "all" else tuple(c.strip() for c in swap_categories.split(","))
    if swap_on is not None and (set(swap_on) - set(CATEGORIES) or not all(swap_on)):
        raise typer.BadParameter(f"--swap-categories must be all or policy categories ({', '.join(CATEGORIES)}), "
                                 f"not {swap_categories!r}")
    for given, needs, idle in (("--pair-sides", "--pair-weight", pair_sides != "both" and not pair_weight),
                               ("--swap-categories", "--swap-weight", swap_on is not None and not swap_weight)):
        if idle:  # an option that would change nothing is a mistake, not a no-op
            raise typer.BadParameter(f"it changes nothing unless you also give {needs} above 0", param_hint=given)
    if adapter not in SHIPPABLE:
        raise typer.BadParameter(f"--adapter must be one of {', '.join(SHIPPABLE)}, not {adapter!r}")
    if policy is not None and not policy.is_file():
        raise typer.BadParameter(f"--policy {policy}: no such file")
    if init is not None:
        if head_init != "random" or adapter != "qv-r8":
            raise typer.BadParameter("--init continues the file's own adapters and head: drop --head-init/--adapter",
                                     param_hint="--init")
        if not init.is_file():
            raise typer.BadParameter(f"{init}: no such file", param_hint="--init")
        try:  # the whole check, in seconds: a file that loads as a classifier may still carry no adapters
            warm_start(init)
        except SafetensorError as e:
            raise typer.BadParameter(f"{init} is not a prompt-classifier file ({e})", param_hint="--init") from None
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--init") from None
        if (out or PROMPT_CLASSIFIER_CHECKPOINT).resolve() == init.resolve():
            raise typer.BadParameter(f"{out or PROMPT_CLASSIFIER_CHECKPOINT} is the file --init continues: write the "
                                     "continued file elsewhere (and its thresholds into a copy of the policy)",
                                     param_hint="--out")
    paths = {"out": out} if out else {}
    paths |= {"policy": policy} if policy else {}
    with err.status("training prompt classifier") as status:
        result = train(seed=seed, epochs=epochs, data=data, adapter=adapter, max_steps=max_steps, head_init=head_init,
                       init=init, pair_weight=pair_weight, pair_sides=pair_sides, swap_weight=swap_weight,
                       swap_categories=swap_on, **paths,
                       say=lambda m: status.update(m))
    err.print(f"{result.examples} prompts, {result.seconds:.0f}s -> {result.weights}")
    err.print(f"validation: {json.dumps(result.val)}")
    err.print(f"thresholds written to the policy: {json.dumps(result.thresholds)}")


@train_app.command("prompt-soup")
def train_prompt_soup(
    a: Annotated[Path, typer.Argument(help="A prompt-classifier file (`t2iguard train prompt-classifier`).")],
    b: Annotated[Path, typer.Argument(help="Another, trained from the same seed (a shared start).")],
    share: Annotated[float, typer.Option(min=0.0, max=1.0, help="B's weight in the average.")] = 0.5,
    out: Annotated[Path | None, typer.Option(help="Where the soup is written (default: the shipped file, "
                                                   "export/weights/prompt_classifier.safetensors).")] = None,
    policy: Annotated[Path | None, typer.Option(help="The policy file the calibrated thresholds go into, as a new "
                                                      "version (default: the bundled policy).")] = None,
) -> None:
    """Average two prompt classifiers' weights (a model soup: still one MiniLM pass per prompt), calibrate the
    soup on the corpus's validation split and write its thresholds into the policy (a new policy version). LoRA
    files soup into one adapter; where either is a low-rank file (`--adapter full-r32`) the soup is a low-rank
    change of their summed rank. About 2 minutes. Rebuild the repository afterwards."""
    from t2iguard.training.prompt_soup import soup

    for path, hint in ((a, "A"), (b, "B")):
        _classifier_file(path, hint)
    if policy is not None and not policy.is_file():
        raise typer.BadParameter(f"--policy {policy}: no such file")
    with err.status("souping prompt classifiers") as status:
        try:
            result = soup(a, b, share, **({"out": out} if out else {}), **({"policy": policy} if policy else {}),
                          say=lambda m: status.update(m))
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
    err.print(f"{result.seconds:.0f}s -> {result.weights}")
    err.print(f"validation: {json.dumps(result.val)}")
    err.print(f"thresholds written to the policy: {json.dumps(result.thresholds)}")


@train_app.command("prompt-thresholds")
def train_prompt_thresholds(
    weights: Annotated[Path, typer.Argument(help="A prompt-classifier file.")] = Path(
        "export/weights/prompt_classifier.safetensors"),
    benign_fpr: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of the validation split's benign "
                                                                     "rows each category may flag.")] = 0.001,
    hard_fpr: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of its risky-looking benign rows each "
                                                                   "category may flag.")] = 0.01,
    floor: Annotated[float, typer.Option(min=0.0, max=1.0, help="No threshold under this (sexual/minors: under "
                                                                "the lower of this and 0.3).")] = 0.5,
    policy: Annotated[Path | None, typer.Option(help="The policy file the thresholds go into, as a new version "
                                                      "(default: the bundled policy).")] = None,
    per_group: Annotated[int, typer.Option(min=1, help="At most this many validation rows per group (benign, "
                                                       "risky-looking benign, unsafe), as a leave-one-source-out "
                                                       "fold calibrates.")] = 1500,
    seed: Annotated[int, typer.Option(help="Seed of the corpus and of the rows drawn.")] = 0,
    data: Annotated[str, typer.Option(help="Whose validation split: the training set the point's folds were cut "
                                           "from (`eval prompt-loso --data`): corpus, corpus-no-templates or "
                                           "corpus-template-twins.")] = "corpus",
    family: Annotated[str | None, typer.Option(help="Comma-separated policy categories calibrated at their own "
                                                    "point (the --family-* shares), every other one at --benign-fpr, "
                                                    "--hard-fpr, --floor: a family point as `eval prompt-loso` "
                                                    "reports it, e.g. hate,harassment.")] = None,
    family_benign_fpr: Annotated[float | None, typer.Option(min=0.0, max=0.5, help="--benign-fpr of the --family "
                                                                                 "categories (default: the same).")
                                 ] = None,
    family_hard_fpr: Annotated[float | None, typer.Option(min=0.0, max=0.5, help="--hard-fpr of the --family "
                                                                               "categories (default: the same).")
                               ] = None,
    family_floor: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="--floor of the --family categories "
                                                                            "(default: the same).")] = None,
) -> None:
    """Calibrate a prompt classifier's thresholds at an operating point, stated as the shares of the corpus's
    validation rows (which no committed classifier trained on) it may flag, e.g. the point `t2iguard eval
    prompt-loso` found out of source (with --family, its point per family of categories); write them into the
    policy as a new version. The defaults are the point training calibrates at. About 3 minutes (needs the data
    cache). Rebuild the repository afterwards."""
    from t2iguard.contract.taxonomy import CATEGORIES
    from t2iguard.training.prompt_loso import FamilyPoint, OperatingPoint, served_thresholds
    from t2iguard.training.train_prompt_classifier import DATASETS, DEFAULT_POLICY, write_thresholds

    _classifier_file(weights, "WEIGHTS")
    if policy is not None and not policy.is_file():
        raise typer.BadParameter(f"--policy {policy}: no such file")
    _fold_data(data)
    point = OperatingPoint(benign_fpr, hard_fpr, floor)
    shares = {"--family-benign-fpr": family_benign_fpr, "--family-hard-fpr": family_hard_fpr,
              "--family-floor": family_floor}
    if family is None and any(v is not None for v in shares.values()):
        given = next(k for k, v in shares.items() if v is not None)
        raise typer.BadParameter(f"{given} needs the categories it calibrates", param_hint="--family")
    if family is not None:
        inside = OperatingPoint(benign_fpr if family_benign_fpr is None else family_benign_fpr,
                                hard_fpr if family_hard_fpr is None else family_hard_fpr,
                                floor if family_floor is None else family_floor)
        point = FamilyPoint(_choices(family, CATEGORIES, "--family"), inside, point)
    with err.status("scoring the validation split"):
        thresholds = served_thresholds(point, weights, seed, per_group, ds=DATASETS[data](seed))
    version = write_thresholds(thresholds, policy or DEFAULT_POLICY)
    err.print(f"thresholds written to {policy or DEFAULT_POLICY} (version {version}): {json.dumps(thresholds)}")


@train_app.command("rewriter")
def train_rewriter(seed: Annotated[int, typer.Option(help="Seed of the data generator and of training.")] = 0) -> None:
    """Train the rewrite tagger's heads; write export/weights/rewrite_tagger.safetensors."""
    from t2iguard.training.train_rewriter import train

    with err.status("training rewrite tagger") as status:
        result = train(seed=seed, say=lambda m: status.update(m))
    err.print(f"{result.examples} prompts, {result.seconds:.0f}s -> {result.weights}; {json.dumps(result.val)}")
    err.print(f"public lists: {', '.join(result.lexicons)}" if result.lexicons else
              "public lists: none cached (`t2iguard data import`): trained on the hand-written lists only")


@train_app.command("shapeworld")
def train_shapeworld(
    phase: Annotated[list[str], typer.Option(
        help="Training phases, run in the order given (default: the committed weights' chain, vae vae-decoder unet "
             "unet-more unet-position guard vae-heads classifiers vae-bodies; `unet-vpred`, `image-classifier` and "
             "`image-classifier-judged` (needs `t2iguard eval judged-images`) are optional, see the README).")] = None,
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


@train_app.command("dpo")
def train_dpo(
    repository: Annotated[Path, typer.Option(help="Built tiny repository of the committed weights: generates "
                                                  "the pairs, and is the measurement's `before`.")] = (
        DEFAULT_REPOSITORY),
    out: Annotated[Path, typer.Option(help="Directory for report.md (before/after table) and metrics.json.")] = (
        Path("build/eval/dpo")),
    prompts: Annotated[int, typer.Option(min=1, help="Benign party-figure requests generated for pairs.")] = 160,
    pair_seed: Annotated[int, typer.Option(help="First ShapeWorld seed of the pairs' draws (disjoint from the "
                                                "held-out draws).")] = 50000,
    steps: Annotated[int, typer.Option(min=1, help="Fine-tuning steps.")] = 100,
    batch: Annotated[int, typer.Option(min=1, help="Pairs per step.")] = 4,
    lr: Annotated[float, typer.Option(help="AdamW learning rate (1e-5 collapsed prompt following: "
                                           "docs/2026-12-04-dpo.md).")] = 1e-6,
    beta: Annotated[float, typer.Option(help="DPO beta (times T, on per-element mean squared errors).")] = 5000.0,
    seed: Annotated[int, typer.Option(help="Seed of fine-tuning (timesteps, noise, batches).")] = 0,
    held_out: Annotated[int, typer.Option(min=1, max=200, help="Held-out text-to-image requests (the regeneration "
                                                               "eval's t2i draws from --eval-seed).")] = 60,
    edits: Annotated[int, typer.Option(min=0, max=200, help="Held-out edit requests (0: none).")] = 16,
    following: Annotated[int, typer.Option(min=0, help="Held-out prompts for prompt following (0: none).")] = 20,
    eval_seed: Annotated[int, typer.Option(help="First ShapeWorld seed of the held-out draws.")] = 7000,
    commit: Annotated[bool, typer.Option(help="Copy the fine-tuned UNet to export/weights/ when every held-out "
                                              "figure held or improved.")] = False,
    threads: Annotated[int, typer.Option(min=1, help="torch threads.")] = 1,
) -> None:
    """Diffusion-DPO safety fine-tuning of the tiny UNet: preference pairs (same prompt and seed: the delivered
    regeneration preferred over the flagged first attempt), DPO against the frozen committed UNet, before/after
    on held-out requests. Resumable: pairs, checkpoints and measurements are cached. Rebuild after --commit."""
    import torch

    from t2iguard.evaluation.dpo import run
    from t2iguard.training.train_dpo import DPORecipe

    torch.set_num_threads(threads)
    if not (repository / "build.json").exists():
        _build("tiny", "cpu", repository)
    recipe = DPORecipe(seed=seed, prompts=prompts, pair_seed=pair_seed, steps=steps, batch=batch, lr=lr, beta=beta)
    try:
        result = run(repository, recipe, out, held_out=held_out, edits=edits, following=following,
                     eval_seed=eval_seed, commit=commit, say=err.print)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo((out / "report.md").read_text())
    err.print(f"pairs: {json.dumps(result['pairs'])}; training: {json.dumps(result['training'])}")
    verdict = "improved" if result["improved"] else "not improved: " + "; ".join(result["not_improved"])
    err.print(f"{verdict}; weights {'committed to export/weights/' if result['committed'] else 'kept at'} "
              f"{result['weights']}")


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
    suite: Annotated[Path | None, typer.Option(help="Extra labelled prompts (TSV: group, categories, prompt[, "
                                                    "source]; or JSONL: text, labels[, group, source]), "
                                                    "reported per source.")] = None,
    real_data: Annotated[bool, typer.Option(help="Also the leave-one-source-out table, held-out sources, twins, "
                                                 "eval-set copies and calibration plot (needs the data cache).")]
        = True,
    variants: Annotated[str, typer.Option(help="Corpus-trained candidates in the real-data study (training/"
                                               "prompt_head.py), comma-separated: a (head), b (weak rows "
                                               "down-weighted), c (b + exemplar bank).")] = "c",
    max_prompts: Annotated[int | None, typer.Option(min=1, help="Screen a seeded sample of at most N prompts per "
                                                               "set (a quick run; default: every prompt).")] = None,
) -> None:
    """The served prompt_guard (in-process) vs the better-profanity blocklist, on held-out sets; then the
    leave-one-source-out study of the model on the public corpus."""
    from t2iguard.evaluation.prompt_classifier import evaluate

    keys = tuple(v.strip() for v in variants.split(",") if v.strip())
    _evaluate(repository, out, lambda r, o, say: evaluate(r, o, say=say, suite=suite, real_data=real_data,
                                                          variants=keys, max_prompts=max_prompts))


@eval_app.command("prompt-loso")
def eval_prompt_loso(
    out: Annotated[Path, typer.Option(help="Where loso.md and loso.json go.")] = Path("build/eval/prompt-loso"),
    steps: Annotated[int, typer.Option(min=1, help="Training steps (64 prompts each) per fold; the shipped "
                                                   "model trained 826.")] = 150,
    per_group: Annotated[int, typer.Option(min=1, help="At most this many rows per group (benign, risky-looking "
                                                       "benign, unsafe) scored per unit and used to calibrate.")]
        = 1500,
    only: Annotated[list[str] | None, typer.Option(help="Hold out only these units (repeatable), e.g. "
                                                        "own-twins.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the corpus caps, the samples and training.")] = 0,
    adapter: Annotated[str, typer.Option(help="How each fold adapts the encoder, comma-separated to compare: "
                                              "qv-r8 (LoRA rank 8 on query/value, as shipped), all-r16 (LoRA "
                                              "rank 16 on every linear layer), full (every encoder weight), full-r32 "
                                              "and full-r8 (full, its change cut to that rank).")]
        = "qv-r8",
    reference: Annotated[bool, typer.Option(help="Run the reference fold (every unit; the in-distribution and "
                                                 "committed-classifier columns).")] = True,
    pair_weight: Annotated[float, typer.Option(min=0.0, help="Weight of the twins' ranking loss in every fold, as "
                                                             "`train prompt-classifier --pair-weight` adds it (a "
                                                             "held-out unit's twins are never drawn; 0: "
                                                             "cross-entropy only).")] = 0.0,
    data: Annotated[str, typer.Option(help="The training set the folds are cut from, as `train prompt-classifier "
                                           "--data` names it: corpus (as shipped), corpus-no-templates or "
                                           "corpus-template-twins (its operating point for files trained on "
                                           "that set).")] = "corpus",
) -> None:
    """Leave-one-source-out for the served model (MiniLM + LoRA + head, windows): one training run per held-out
    unit plus a reference fold on every unit at the same budget (about 9 minutes a fold on 2 cores; each fold is
    cached under the cache root, so an interrupted run resumes). Needs the data cache (`t2iguard data import`)."""
    from t2iguard.export.tiny import ADAPTERS
    from t2iguard.training.prompt_loso import UnknownUnit, markdown, study

    adapters = _choices(adapter, tuple(ADAPTERS), "--adapter")
    _fold_data(data)
    out.mkdir(parents=True, exist_ok=True)
    for name in adapters:
        with err.status(f"leave-one-source-out, {name}") as status:
            try:
                res = study(seed, steps, per_group, only, say=lambda m: status.update(m), adapter=name,
                            reference=reference, pair_weight=pair_weight, data=data)
            except UnknownUnit as e:
                raise typer.BadParameter(str(e), param_hint="--only") from e
        stem = (("loso" if name == "qv-r8" else f"loso-{name}") + ("" if pair_weight == 0 else f"-pairs{pair_weight:g}")
                + ("" if data == "corpus" else f"-{data}"))
        (out / f"{stem}.json").write_text(json.dumps(res, indent=1))
        (out / f"{stem}.md").write_text(markdown(res))
        typer.echo(markdown(res))
        err.print(f"written: {out / f'{stem}.md'}, {out / f'{stem}.json'}")


@eval_app.command("rewriter")
def eval_rewriter(
    repository: Annotated[Path, typer.Option(help="Built repository to evaluate.")] = DEFAULT_REPOSITORY,
    out: Annotated[Path, typer.Option(help="Where report.md, metrics.json, plot.png go.")] =
        Path("build/eval/rewriter"),
    seeds: Annotated[int, typer.Option(min=1, help="Seeded requests per occupation prompt.")] = 500,
    no_op_prompts: Annotated[int, typer.Option(min=1, help="Prompts of the no-op precision set.")] = 600,
    anonymisation_prompts: Annotated[int, typer.Option(min=1, help="Prompts of each anonymisation set (private "
                                                                   "details; public names).")] = 400,
    public_names: Annotated[int, typer.Option(min=0, help="The first N entries of each held-out public list "
                                                          "(names, occupations, figures; 0: every entry).")] = 0,
) -> None:
    """Diversity, no-op precision, anonymisation recall and grounding of the rewriter (in-process)."""
    from t2iguard.evaluation.rewriter import evaluate

    _evaluate(repository, out, lambda r, o, say: evaluate(r, o, seeds=seeds, say=say, no_op_prompts=no_op_prompts,
                                                          anonymisation_prompts=anonymisation_prompts,
                                                          public_names=public_names))


def _fold_data(value: str) -> str:
    """`--data` of the commands that cut folds or calibrate at their point: one of `prompt_loso.FOLD_DATA` (a
    training set with sources to hold out); else a usage error naming the option, before any corpus is read."""
    from t2iguard.training.prompt_loso import FOLD_DATA

    if value not in FOLD_DATA:
        raise typer.BadParameter(f"{value!r}: choose from {', '.join(FOLD_DATA)}", param_hint="--data")
    return value


def _choices(value: str, known: tuple[str, ...], hint: str) -> tuple[str, ...]:
    """A comma-separated option's items, each one of `known`; else a usage error naming the option."""
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    if not chosen or set(chosen) - set(known):
        raise typer.BadParameter(f"{value!r}: choose from {', '.join(known)}", param_hint=hint)
    return chosen


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
    methods: Annotated[str, typer.Option(help="Comma-separated: policy (the repository's policy as it stands: "
                                              "its guidance, and its edit_guidance for edits); sld, classifier, "
                                              "reseed (one guidance for both sets; reseed: unguided, fresh "
                                              "noise: the baseline); sld-fresh, classifier-fresh (text-to-image "
                                              "regenerations guided on fresh noise from the first: policy "
                                              "`fresh_noise`).")] = "sld,classifier,reseed",
    sets: Annotated[str, typer.Option(help="Comma-separated request sets: t2i (with the prompt-following study), "
                                           "edits (drawn from seed + requests either way).")] = "t2i,edits",
) -> None:
    """Guided regeneration (SLD vs classifier guidance vs unguided reseeding) on ShapeWorld: flagged rate
    before/after, refusals, attribute retention, latency; with a before/after picture grid and a plot."""
    from t2iguard.evaluation.regeneration import METHODS, SETS, evaluate

    chosen, kinds = _choices(methods, METHODS, "--methods"), _choices(sets, SETS, "--sets")

    def run(r: Path, o: Path, say) -> None:
        results = evaluate(r, o, n=requests, attempts=attempts, seed=seed, methods=chosen, say=say, sets=kinds)
        if json_out is not None:
            json_out.write_text(json.dumps(results, indent=2))

    _evaluate(repository, out, run)


class _EvalProgress:
    """`eval all`'s rich display: a line per section, its latest message, a spinner while it runs."""

    def __init__(self, progress):
        self.progress, self.tasks = progress, {}

    def start(self, key: str, title: str) -> None:
        self.tasks[key] = self.progress.add_task(f"{key}: starting", total=1)

    def say(self, key: str, message: str) -> None:
        self.progress.update(self.tasks[key], description=f"{key}: {message}")

    def done(self, key: str, status: str, seconds: float) -> None:
        colour = {"ok": "green", "failed": "red"}.get(status, "yellow")
        self.progress.update(self.tasks[key], completed=1, description=f"{key}: [{colour}]{status}[/{colour}]")


@eval_app.command("all")
def eval_all(
    size: Annotated[str, typer.Option(help="small: a few minutes on 2 CPU cores, every figure from a small "
                                           "sample; full: the sizes of the README's figures (hours). Per section, "
                                           f"parameter small/full: {sizes_help()}.")] = "small",
    out: Annotated[Path, typer.Option(help="Where report.html, report.json and one folder per section go.")] = (
        Path("build/eval/all")),
    repository: Annotated[Path, typer.Option(help="Built repository the in-process evals load (built first "
                                                  "when missing) and a started server serves.")] =
        DEFAULT_REPOSITORY,
    url: Annotated[str | None, typer.Option("--url", help="Triton gRPC endpoint (host:port) of a served stack "
                                                          "for the red team; default: start one tritonserver "
                                                          "over --repository, stopped at the end.")] = None,
    only: Annotated[str, typer.Option(help="Comma-separated sections to run (default: all): "
                                           f"{', '.join(SECTIONS)}.")] = "",
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override one section parameter, SECTION.PARAM=VALUE (repeat), e.g. "
                      "`--set regeneration.requests=50`.")] = None,
) -> None:
    """Run every evaluation at one size and write one report: report.html (self-contained: provenance, a
    summary, then per section the command that reproduces it alone, its tables and plots) and report.json
    (the headline figures per section, stable keys, for tracking across versions).

    Sections: prompt-classifier, rewriter and regeneration run in-process on --repository; watermark runs
    benchmarks/watermark_robustness.py (a source checkout); redteam attacks a served stack over gRPC. Each
    section's own outputs land in OUT/SECTION/. A section that fails is reported with its error and the others
    still run (exit 1 at the end); one whose inputs are absent (no data cache for the real-data study) says
    what was skipped and the command that fetches it. Exit 2: a bad option."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from t2iguard.evaluation import report_all as RA

    try:
        if size not in RA.SIZES:
            raise typer.BadParameter(f"{size!r}: choose from {', '.join(RA.SIZES)}", param_hint="--size")
        chosen = RA.parse_only(only)
        overrides = RA.parse_overrides(set_ or [])
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if not (repository / "build.json").exists():
        _build("tiny", "cpu", repository)
    server = None

    def served() -> str:
        nonlocal server
        if url:
            return url
        if server is None:
            from t2iguard.triton.server import TritonServer, free_ports

            out.mkdir(parents=True, exist_ok=True)
            server = TritonServer(repository, free_ports(), log_path=out.resolve() / "tritonserver.log")
            try:
                server.start()
            except Exception:
                server.stop()
                raise
        if server.proc is None or server.proc.poll() is not None:
            raise RuntimeError(f"the tritonserver started for this run is not running (log: {server.log_path})")
        return server.grpc_url

    try:
        with Progress(SpinnerColumn(finished_text="-"), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=err) as progress:
            rep = RA.run_all(repository, out, served, size, chosen, overrides, url, _EvalProgress(progress))
    finally:
        if server is not None:
            server.stop()
    table = Table("section", "status", "seconds", title=f"t2iguard eval all --size {size}")
    for key, entry in rep["sections"].items():
        table.add_row(key, entry["status"], f"{entry['seconds']:.0f}")
    Console().print(table)
    for key, entry in rep["sections"].items():
        for note in entry["notes"]:
            err.print(f"{key}: {note}")
        if entry["error"]:
            err.print(f"[red]{key} failed:[/red] {entry['error']}")
    err.print(f"written: {out / 'report.html'}, {out / 'report.json'}")
    if not rep["ok"]:
        raise typer.Exit(OTHER.exit_code)


@eval_app.command("judge-sample")
def eval_judge_sample(
    repository: Annotated[Path, typer.Option(help="Built repository to generate with.")] = DEFAULT_REPOSITORY,
    out: Annotated[Path, typer.Option(help="Where the PNGs and sample.jsonl go.")] = Path("evaluation/judge_sample"),
    requests: Annotated[int, typer.Option(min=1, help="Requests per set (party prompts; beautify edits).")] = 110,
    seed: Annotated[int, typer.Option(help="First ShapeWorld seed (30000: the committed sample; 31000: the "
                                           "text-to-image sample of the `vae-bodies` decoder).")] = 30000,
    sets: Annotated[str, typer.Option(help="Comma-separated request sets: t2i, edits (drawn from seed + "
                                           "requests either way).")] = "t2i,edits",
    method: Annotated[str, typer.Option(help="How flagged images are regenerated: classifier (the tiny default), "
                                             "sld, reseed (the baseline).")] = "classifier",
) -> None:
    """Generate the judge sample: first attempts and last attempts of regenerated requests, classifier
    guidance, the regeneration sets, with what the classifiers and the pixel oracles said."""
    from t2iguard.evaluation.judge_sample import SETS, generate
    from t2iguard.evaluation.regeneration import METHODS

    chosen = _choices(sets, SETS, "--sets")
    _choices(method, METHODS, "--method")

    if not (repository / "build.json").exists():
        _build("tiny", "cpu", repository)
    with err.status("generating") as status:
        rows = generate(repository, out, n=requests, seed=seed, sets=chosen, method=method,
                        say=lambda m: status.update(m))
    err.print(f"written: {len(rows)} images and {out / 'sample.jsonl'}")


@eval_app.command("judged-images")
def eval_judged_images(
    repository: Annotated[Path, typer.Option(help="Built repository to generate with (the training phase reads "
                                                  "the images cached for this repository's graphs).")]
        = DEFAULT_REPOSITORY,
    requests: Annotated[int | None, typer.Option(min=1, help="Requests per kind (default: the recipe's `judged`, "
                                                           "which the training phase reads).")] = None,
    kinds: Annotated[str, typer.Option(help="Comma-separated request kinds: party, plain.")] = "party,plain",
) -> None:
    """Generate the training images of `t2iguard train shapeworld --phase image-classifier-judged`: every
    attempt of guided regeneration, with the bare judge's logit, cached outside git (about a minute per hundred
    requests on 2 cores)."""
    from t2iguard.evaluation.judge_sample import generate_judged
    from t2iguard.training.judged_images import REQUESTS
    from t2iguard.training.train_shapeworld import Recipe

    chosen = _choices(kinds, tuple(REQUESTS), "--kinds")
    requests = requests or Recipe().judged
    if not (repository / "build.json").exists():
        _build("tiny", "cpu", repository)
    for kind in chosen:
        with err.status(f"generating {kind} requests") as status:
            path = generate_judged(repository, requests, kind, say=lambda m: status.update(m))
        err.print(f"{kind}: {path}")


label_app = typer.Typer(help="Label the judge sample by eye: contact sheets, then record what was seen.",
                        no_args_is_help=True)
eval_app.add_typer(label_app, name="label")


@label_app.command("sheets")
def label_sheets(
    out: Annotated[Path, typer.Option(help="Where the sheets go.")] = Path("build/judge_sample/sheets"),
    sample: Annotated[Path, typer.Option(help="The sample folder.")] = Path("evaluation/judge_sample"),
    only: Annotated[str, typer.Option(help="Comma-separated tile numbers: only these, on zoom.png.")] = "",
    scale: Annotated[float, typer.Option(help="Enlarge zoom.png by this factor.")] = 2.0,
) -> None:
    """Numbered contact sheets of the sample, shuffled and blind (no verdicts); edits as source | output."""
    from t2iguard.evaluation.label_tool import sheets

    picked = [int(n) for n in only.split(",") if n.strip()]
    for path in sheets(out, sample, picked or None, scale):
        typer.echo(str(path))


@label_app.command("record")
def label_record(
    lines: Annotated[Path, typer.Argument(help="Labels, one tile a line: `12 figure=y bare=n ... note=\"..\"` "
                                               "(- reads stdin).")],
    sample: Annotated[Path, typer.Option(help="The sample folder (labels.jsonl is written there).")] = Path(
        "evaluation/judge_sample"),
    labeller: Annotated[str, typer.Option(help="Who looked.")] = "",
) -> None:
    """Check and record labels into labels.jsonl (a tile recorded again replaces its label)."""
    from t2iguard.evaluation.label_tool import record

    text = sys.stdin.read() if str(lines) == "-" else lines.read_text()
    try:
        rows = record(text.splitlines(), sample, labeller)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="LINES") from e
    err.print(f"{len(rows)} labels in {sample / 'labels.jsonl'}")


@eval_app.command("judge-agreement")
def eval_judge_agreement(
    sample: Annotated[Path, typer.Option(help="The labelled sample folder.")] = Path("evaluation/judge_sample"),
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures to this JSON file.")] = None,
    decoded: Annotated[int, typer.Option(min=0, help="Also N drawn party figures through the VAE: what it does "
                                                     "to the nudity stand-in, and the oracles on them (0: skip).")]
        = 0,
    image_classifier: Annotated[Path | None, typer.Option(
        help="Also score the text-to-image images with the image classifier in this weights folder (its "
             "image_classifier.safetensors; e.g. a candidate), `nudity` against the `bare` labels.")] = None,
) -> None:
    """The pixel oracles' and the classifiers' agreement with the labels made by eye (Markdown tables)."""
    from t2iguard.evaluation.judge_agreement import (
        agreement,
        decoded_stand_in,
        render,
        render_decoded,
        render_rescored,
        rescored,
    )

    result = agreement(sample)
    typer.echo(render(result))
    if image_classifier is not None:
        result["rescored"] = rescored(sample, image_classifier)
        typer.echo(render_rescored(result["rescored"], image_classifier))
    if decoded:
        result["decoded"] = decoded_stand_in(decoded)
        typer.echo(render_decoded(result["decoded"]))
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2))


@app.command()
def report(
    audit: Annotated[Path, typer.Option(help="The audit trail (JSON lines) a served repository writes.")] = (
        DEFAULT_REPOSITORY / "audit.jsonl"),
    since: Annotated[str, typer.Option(help="Window: events of the last N (s, m, h or d; e.g. 30m, 24h), or an "
                                            "ISO time (UTC); default all.")] = "",
    top: Annotated[int, typer.Option(help="Clients listed, most refused first.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON instead of tables.")] = False,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write one row per client here.")] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", help="Also write a PNG of decisions and "
                                                                 "categories here.")] = None,
) -> None:
    """Read the audit trail back: counts by decision and category, refusal and regeneration rates, errors,
    latency percentiles and the clients refused most, over a time window."""
    from datetime import datetime, timedelta, timezone

    from rich.table import Table

    from t2iguard.cli.report import clients_csv, plot, summarise
    from t2iguard.runtime.audit import read_events

    window = None
    if since:
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            window = (datetime.now(timezone.utc) - timedelta(seconds=float(since[:-1]) * units[since[-1]])
                      if since[-1] in units else datetime.fromisoformat(since.replace("Z", "+00:00")))
        except (ValueError, KeyError):
            raise typer.BadParameter(f"{since!r}: give N followed by s, m, h or d, or an ISO time",
                                     param_hint="--since") from None
        window = window if window.tzinfo else window.replace(tzinfo=timezone.utc)
    if not audit.exists():
        raise typer.BadParameter(f"no audit file {audit}", param_hint="--audit")
    summary = summarise(read_events(audit, window), window, top)
    if csv_out:
        csv_out.write_text(clients_csv(summary))
    if plot_out:
        plot(summary, plot_out)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    console = Console()
    head = Table(title=f"{audit}: {summary['events']} events, {summary['first']} .. {summary['last']}")
    for col in ("answered", "refusal rate", "regeneration rate", "p50 ms", "p95 ms", "torn lines"):
        head.add_column(col, justify="right")
    lat = summary["latency_ms"]
    head.add_row(str(summary["answered"]), *(("-" if v is None else f"{100 * v:.1f}%")
                                             for v in (summary["refusal_rate"], summary["regeneration_rate"])),
                 str(lat.get("p50", "-")), str(lat.get("p95", "-")), str(summary["torn_lines"]))
    console.print(head)
    for title, counts in (("decisions", summary["decisions"]), ("errors", summary["errors"]),
                          ("flagged categories", summary["categories"])):
        if counts:
            table = Table(title=title)
            table.add_column(title.split()[-1])
            table.add_column("requests", justify="right")
            for k, v in counts.items():
                table.add_row(k, str(v))
            console.print(table)
    clients = Table(title="clients (most refused first)")
    for col in ("client", "requests", "refused"):
        clients.add_column(col)
    for row in summary["clients"]:
        clients.add_row(row["client"], str(row["requests"]), str(row["refused"]))
    console.print(clients)


if __name__ == "__main__":
    app()
