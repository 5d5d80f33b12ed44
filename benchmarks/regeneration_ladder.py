"""Tune the regeneration ladder: how far should guidance escalate (the ceiling) for each set?

    .venv/bin/python benchmarks/regeneration_ladder.py --set t2i --requests 150 --seed 9000
    .venv/bin/python benchmarks/regeneration_ladder.py --set edits --requests 100 --seed 9300 --methods sld \
        --edit-strengths 1
    .venv/bin/python benchmarks/regeneration_ladder.py --set edits --requests 100 --seed 9300 \
        --methods classifier --ceilings strong --edit-strengths 1,0.9,0.8
    .venv/bin/python benchmarks/regeneration_ladder.py --set edits --requests 40 --seed 41000 \
        --methods classifier,reseed --ceilings medium --keep-identity off,2,4

Runs one request set of `t2iguard eval regeneration` (same requests, same pipeline code, same
judge) for each method x ceiling x edit strength, with every category escalating to that one
ceiling (the policy's per-category ceilings are cleared), and prints a Markdown table: flagged at
the first attempt, still flagged after 2 and after N regenerations, shape / colour retention, and
for edits how many drew the crown asked for (first attempts / delivered images); then, per row, the
requests still refused with their source figure's size and tone (which requests fail, not only how
many: the same ones at every setting point at the weights, not the ladder). Tune on seeds
that the reported eval (7000+) never uses; the README's tuning tables come from commands like these.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from t2iguard.contract.policy import Policy
from t2iguard.evaluation import regeneration as E
from t2iguard.export.build import build_repository
from t2iguard.runtime.guidance import PRESETS
from t2iguard.runtime.images import image_grid
from t2iguard.training.data import shapeworld as W


def one_ceiling(policy: Policy, ceiling: str, edit_strength: float | None, keep_grow: int | None = None) -> Policy:
    """`policy` with every category and edits escalating to `ceiling` (starting there when it is below the
    policy's starting preset), edits regenerated from `edit_strength` (None: the policy's); `keep_grow` (None:
    the policy's `edit_keep_identity`; -1: off) keeps the source's faces out of the regenerations' mask
    (ShapeWorld's skin tones, tolerance 24, grown by that many pixels)."""
    data = policy.model_dump()
    start = min(PRESETS.index(data["regeneration"]["preset"]), PRESETS.index(ceiling))
    data["regeneration"].update(preset=PRESETS[start], ceiling=ceiling, edit_ceiling=None)
    if edit_strength is not None:
        data["regeneration"]["edit_strength"] = edit_strength
    if keep_grow is not None:
        data["regeneration"]["edit_keep_identity"] = None if keep_grow < 0 else {
            "colours": [list(c) for c in W.TONES.values()], "tolerance": 24.0, "grow": keep_grow}
    for rule in data["categories"].values():
        if rule["image"] is not None:
            rule["image"]["ceiling"] = None
    return Policy.model_validate(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=("t2i", "edits"), required=True)
    ap.add_argument("--requests", type=int, default=150)
    ap.add_argument("--seed", type=int, default=9000)
    ap.add_argument("--attempts", type=int, default=4)
    ap.add_argument("--methods", default="sld,classifier")
    ap.add_argument("--ceilings", default="max,strong")
    ap.add_argument("--edit-strengths", default=None,
                    help="edits only: comma-separated strengths their regenerations start from, each in (0, 1] "
                         "(default: the policy's edit_strength)")
    ap.add_argument("--keep-identity", default=None,
                    help="edits only: comma-separated, per run: `off`, or how many pixels the source's faces are "
                         "grown by and kept out of the regenerations' mask (default: the policy's "
                         "edit_keep_identity)")
    ap.add_argument("--refused-grid", type=Path, default=None,
                    help="write a PNG: one row per refused request of every setting, its source (edits; blank for "
                         "t2i) and then each attempt's image")
    ap.add_argument("--repository", type=Path, default=Path("build/repository/cpu"))
    args = ap.parse_args()
    methods, ceilings = args.methods.split(","), args.ceilings.split(",")
    strengths: list[float | None] = [None]
    if args.edit_strengths is not None:
        if args.set != "edits":
            ap.error("--edit-strengths: edits only (text-to-image has no source to start from)")
        strengths = [float(v) for v in args.edit_strengths.split(",")]
        if not all(0.0 < v <= 1.0 for v in strengths):
            ap.error("--edit-strengths: each in (0, 1]")
    keeps: list[int | None] = [None]
    if args.keep_identity is not None:
        if args.set != "edits":
            ap.error("--keep-identity: edits only")
        keeps = [-1 if v == "off" else int(v) for v in args.keep_identity.split(",")]
    for name, value, known in (("--methods", methods, E.METHODS), ("--ceilings", ceilings, PRESETS)):
        if set(value) - set(known):
            ap.error(f"{name}: choose from {', '.join(known)}")
    repo = args.repository if (args.repository / "build.json").exists() else (
        build_repository("tiny", "cpu", args.repository).path)
    requests = (E.t2i_requests if args.set == "t2i" else E.edit_requests)(args.requests, args.seed)
    judge = E.AttributeJudge()
    print("| method, ceiling, edit strength[, identity kept] | set | flagged (attempt 1) | after 2 | "
          f"after {args.attempts} | refused | "
          "oracle: attempt 1 -> delivered | tone judge: attempt 1 -> delivered | retention shape / colour | "
          "crown drawn (first / delivered) | latency regenerated / unflagged |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    refused: list[str] = []
    tiles: list = []
    for method in methods:
        for ceiling in ceilings:
            for strength, keep in [(s, k) for s in strengths for k in keeps]:
                rows = E.run_method(repo, method, args.attempts, requests, lambda m: None,
                                    policy=lambda p, c=ceiling, s=strength, k=keep: one_ceiling(p, c, s, k))
                m = E.summarise(rows, args.attempts, args.set, judge)
                ret, crown = m["attribute_retention"], m.get("crown")
                shown = "policy" if strength is None else format(strength, "g")
                if keep is not None:
                    shown += ", identity kept off" if keep < 0 else f", identity kept (grow {keep})"
                oracle, tone = m["oracle"], m["independent_judge"]
                print(f"| {method}, {ceiling}, {shown} | {args.set} ({args.requests}) | "
                      f"{m['flagged_first_attempt']:.1%} | {m['still_flagged_after'].get('2', float('nan')):.1%} | "
                      f"{m['still_flagged_after'][str(args.attempts)]:.1%} | {m['refused']:.1%} | "
                      f"{oracle['first_attempt']:.1%} -> {oracle['delivered']:.1%} | "
                      + (f"{E._pct(tone['first_attempt'])} -> {E._pct(tone['delivered'])} | " if tone else "- | ")
                      + f"{ret.get('shape', float('nan')):.0%} / {ret.get('colour', float('nan')):.0%} | "
                      + (f"{E._pct(crown['first_attempt'])} / {E._pct(crown['delivered'])} | " if crown else "- | ")
                      + ("-" if m["latency_ratio"] is None else f"{m['latency_ratio']:.2f}x") + " |", flush=True)
                gone = [r for r in rows if r["refused"]]
                for r in gone:  # a blocked request stops early: pad its row with blanks
                    blank = np.full_like(r["images"][0], 255)
                    tiles += ([r["req"].init_image if r["req"].is_edit else blank] + r["images"]
                              + [blank] * (args.attempts + 1 - len(r["images"])))
                refused.append(f"- {method}, {ceiling}, {shown}: " + (", ".join(
                    f"{r['id']} ({r['scene'].size}, {r['scene'].tone})" for r in gone) or "none"))
    print("\nrefused (request: source figure's size, tone):\n" + "\n".join(refused))
    if args.refused_grid is not None and tiles:
        Image.fromarray(image_grid(tiles, args.attempts + 2)).quantize(256).save(args.refused_grid)
        print(f"refused requests' attempts: {args.refused_grid}")


if __name__ == "__main__":
    main()
