"""Where regeneration loses the prompt's subject: the text-to-image requests of the regeneration eval whose first
attempt shows the figure (by the attribute judge, as `t2iguard eval regeneration` scores shape retention) and whose
delivered regeneration does not, drawn as pairs (first attempt, delivered image), with which of them are blank (no
object stands apart from the border's colour: `t2iguard.runtime.images.object_groups`).

    python benchmarks/shape_lost.py --seed 65000 [--requests 200] [--keep-subject on|off|policy] \\
        [--repository build/repository/cpu] [--out build/eval/shape-lost-65000.png]

`--keep-subject` sets the policy's `regeneration.keep_subject` for this run (`policy`: the repository's). Prints
one line per such request (seed, the shape the judge read, attempts, blank or not) and the count; about 4 minutes
per 200 requests on 2 cores. docs/regeneration-shape-lost.png is `--seed 65000 --keep-subject off`, halved and
reduced to 256 colours.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from t2iguard.evaluation import regeneration as E
from t2iguard.runtime.images import image_grid, object_groups
from t2iguard.training.data import shapeworld as W


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True, help="first seed of the t2i requests")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--keep-subject", choices=("on", "off", "policy"), default="policy")
    ap.add_argument("--repository", type=Path, default=Path("build/repository/cpu"))
    ap.add_argument("--out", type=Path, help="the picture (default: build/eval/shape-lost-SEED.png)")
    args = ap.parse_args()

    def amend(policy):
        if args.keep_subject == "policy":
            return policy
        regen = policy.regeneration.model_copy(update={"keep_subject": args.keep_subject == "on"})
        return policy.model_copy(update={"regeneration": regen})

    rows = E.run_method(args.repository, "policy", 4, E.t2i_requests(args.requests, args.seed), lambda m: None, amend)
    judge = E.AttributeJudge()
    regenerated = [r for r in rows if not r["refused"] and len(r["images"]) > 1]
    tiles, lost = [], 0
    for r in regenerated:
        first, last = judge(np.stack([r["images"][0], r["images"][-1]]))
        shape = E._truth(r["scene"])[0]
        if first[0] == shape and last[0] != shape:
            lost += 1
            blank = not object_groups(r["images"][-1])[1]
            print(f"seed {r['req'].seed}: read as {W.SHAPES[last[0]]}, {len(r['images'])} attempts"
                  f"{', blank' if blank else ''}")
            tiles += [r["images"][0], r["images"][-1]]
    print(f"{lost} of {len(regenerated)} regenerated deliveries lost the figure the first attempt showed")
    if tiles:
        out = args.out or Path(f"build/eval/shape-lost-{args.seed}.png")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image_grid(tiles, 6)).save(out)
        print(f"written: {out}")


if __name__ == "__main__":
    main()
