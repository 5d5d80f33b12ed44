"""int8 dynamic quantisation of the prompt classifier (issue 22), measured against its fp32 graph in one run.

    .venv/bin/python deploy/perf/int8.py [--repository build/repository/cpu] [--seconds 10] [--per-channel]
        [--part all|ffn|attention] [--json OUT]

The issue's rule: quantise the text models if and only if the prompt guard's figures on the project's validation
sets move by less than 0.5 points. This script quantises the repository's `prompt_classifier` graph with
onnxruntime's `quantize_dynamic` (int8 weights of every MatMul, activations quantised per batch at run time),
then, on the same machine in the same run:

- figures, fp32 and int8, at the bundled policy's thresholds, prompts prepared as served (`normalize`, the
  spec's length buckets): flagged share per group of the project's committed prompt sets (training/data/*.tsv),
  of 1000 held-out twin pairs (`twins(10000, held_out=True)`) and of the corpus validation split (the rows the
  thresholds were calibrated on; needs the data cache), and the largest score difference;
- ranking apart from the operating point, per set with unsafe rows (`ranking`): AUROC of each graph's risk (max
  score / threshold), and the unsafe share int8 catches when its cut flags as many of the other rows as fp32
  does: whether a loss is the thresholds' (a calibration for the int8 graph would win it back) or the graph's;
- speed: prompts/s of each graph on batches of 32 captions (`hot_path.graph_reference`, the served intra-op
  threads), the two measured in alternation `--rounds` times, and one prompt's p50.

Prints a Markdown table (deploy/perf/RESULTS.md) and the verdict.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from hot_path import ROOT, captions, graph_reference

from t2iguard.contract import specs as S
from t2iguard.contract.policy import load_policy
from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.evaluation.prompt_classifier import load_tsv, ranking
from t2iguard.export.tiny import tiny_profile
from t2iguard.runtime.runners import ort_session
from t2iguard.runtime.text import normalize, tokenize
from t2iguard.training.data.twins import twins

#: the issue's tolerance, in points of a flagged share
TOLERANCE = 0.5


#: which MatMuls `quantise` quantises: every one onnxruntime quantises, or, by their weight's shape, the
#: feed-forward pair (384x1536, 1536x384) or the attention projections (384x384)
PARTS = ("all", "ffn", "attention")


def quantise(model: Path, out: Path, per_channel: bool = False, part: str = "all") -> Path:
    """fp32 ONNX -> int8 dynamic-quantised ONNX (MatMul weights int8, one scale per tensor or, `per_channel`, per
    output channel; activations uint8 per batch); `part` (`PARTS`) limits which MatMuls are quantised."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = None  # "all": every MatMul onnxruntime quantises, as measured before `part` existed
    if part != "all":
        graph = onnx.load(str(model)).graph
        shapes = {i.name: tuple(i.dims) for i in graph.initializer}
        want = {"ffn": lambda d: 1536 in d, "attention": lambda d: d == (384, 384)}[part]
        nodes = [n.name for n in graph.node if n.op_type == "MatMul"
                 and any(i in shapes and want(shapes[i]) for i in n.input)]
    quantize_dynamic(str(model), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                     per_channel=per_channel, nodes_to_quantize=nodes)
    return out


def validation_sets() -> dict[str, tuple[list[str], np.ndarray]]:
    """{set: (texts as written, group str [N])}: the committed prompt files, held-out twins, and the corpus
    validation split where the cache holds it (its texts are already normalised; normalising is idempotent)."""
    sets = {}
    for name in ("test_prompts", "dev_prompts", "dev_prompts_2"):
        rows = load_tsv(ROOT / "training" / "data" / f"{name}.tsv")
        sets[name] = ([r.prompt for r in rows], np.array([r.group for r in rows]))
    pairs = twins(10_000, per_category=84, held_out=True)[:1000]
    sets["held-out twins"] = ([t.benign for t in pairs] + [t.unsafe for t in pairs],
                              np.array(["benign twin"] * len(pairs) + ["unsafe twin"] * len(pairs)))
    from t2iguard.training.train_prompt_classifier import corpus_dataset

    ds = corpus_dataset(0)
    val = ds.split == "val"
    if (ds.source[val] != "own-templates").any():
        sets["corpus validation split"] = (list(ds.texts[val]), ds.groups[val])
    return sets


def scores(session, texts: list[str], buckets: tuple[int, ...], batch: int = 64) -> np.ndarray:
    """float32 [N, C]: the graph on the normalised texts, batches padded to their length bucket."""
    out = []
    for i in range(0, len(texts), batch):
        ids, mask = tokenize([normalize(t) for t in texts[i:i + batch]], 77, buckets)
        out.append(session.run([S.PROMPT_SCORES], {S.INPUT_IDS: ids, S.ATTENTION_MASK: mask})[0])
    return np.concatenate(out)


def one_prompt_p50(session, texts: list[str], buckets: tuple[int, ...], n: int = 200) -> float:
    times = []
    for t in texts[:n]:
        t0 = time.perf_counter()
        scores(session, [t], buckets)
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repository", type=Path, default=ROOT / "build" / "repository" / "cpu")
    ap.add_argument("--seconds", type=float, default=10.0, help="per throughput measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the fp32 and int8 throughput runs")
    ap.add_argument("--per-channel", action="store_true", help="one weight scale per output channel")
    ap.add_argument("--part", choices=PARTS, default="all", help="which MatMuls to quantise (by weight shape)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    spec = S.build_specs(tiny_profile())[S.PROMPT_CLASSIFIER]
    buckets = spec.seq_buckets
    fp32 = args.repository / S.PROMPT_CLASSIFIER / "1" / "model.onnx"
    thresholds = load_policy().prompt_thresholds()
    t = np.array([thresholds[c] for c in CATEGORIES])
    with tempfile.TemporaryDirectory() as tmp:
        int8 = quantise(fp32, Path(tmp) / "model.int8.onnx", args.per_channel, args.part)
        graphs = {"fp32": fp32, "int8": int8}
        sizes = {k: p.stat().st_size / 2**20 for k, p in graphs.items()}
        sessions = {k: ort_session(p, spec.threads) for k, p in graphs.items()}
        res: dict = {"figures": {}, "max_abs_score_diff": {}, "ranking": {}, "size_mib": sizes}
        for name, (texts, groups) in validation_sets().items():
            s = {k: scores(sess, texts, buckets) for k, sess in sessions.items()}
            res["max_abs_score_diff"][name] = float(np.abs(s["fp32"] - s["int8"]).max())
            res["ranking"][name] = ranking(((s["fp32"] / t).max(1), groups), ((s["int8"] / t).max(1), groups))
            res["figures"][name] = {
                g: {k: 100 * float((s[k][groups == g] >= t).any(1).mean()) for k in s} | {"n": int((groups == g).sum())}
                for g in sorted(set(groups))}
        prompts = captions()
        rates: dict[str, list[float]] = {"fp32": [], "int8": []}
        for _ in range(args.rounds):
            for k, p in graphs.items():
                rates[k].append(graph_reference(args.repository, prompts, args.seconds, model=p)[0])
        res["prompts_per_s"] = {k: statistics.median(v) for k, v in rates.items()}
        res["one_prompt_p50_ms"] = {k: one_prompt_p50(sess, prompts, buckets) for k, sess in sessions.items()}
    moved = max(abs(g["fp32"] - g["int8"]) for f in res["figures"].values() for g in f.values())
    res["largest_move_points"] = moved
    res["verdict"] = "within tolerance" if moved < TOLERANCE else "outside tolerance"
    lines = ["| set | group | n | fp32 flagged | int8 flagged | moved (points) |", "|---|---|---|---|---|---|"]
    for name, f in res["figures"].items():
        for g, v in f.items():
            lines.append(f"| {name} | {g} | {v['n']} | {v['fp32']:.1f}% | {v['int8']:.1f}% | "
                         f"{v['int8'] - v['fp32']:+.1f} |")
    lines += ["", "| measure | fp32 | int8 |", "|---|---|---|",
              f"| prompts/s, batches of 32 (median of {args.rounds}) | {res['prompts_per_s']['fp32']:.0f} | "
              f"{res['prompts_per_s']['int8']:.0f} |",
              f"| one prompt, p50 (ms) | {res['one_prompt_p50_ms']['fp32']:.1f} | "
              f"{res['one_prompt_p50_ms']['int8']:.1f} |",
              f"| graph size (MiB) | {sizes['fp32']:.1f} | {sizes['int8']:.1f} |",
              "", "| set | ranking, fp32 / int8 |", "|---|---|",
              *(f"| {name} | {line} |" for name, line in res["ranking"].items() if line is not None),
              "", f"largest move: {moved:.2f} points ({res['verdict']}, tolerance {TOLERANCE}); largest score "
              f"difference {max(res['max_abs_score_diff'].values()):.4f}"]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
