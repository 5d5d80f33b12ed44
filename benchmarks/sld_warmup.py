"""SLD's `strong` preset with another warm-up, on the regeneration eval: does a longer warm-up (the layout set before
the guidance acts) keep the figure's shape without leaving more bare deliveries? Choose on tuning seeds (9600+,
9800+); a value chosen there is then measured on fresh ranges, beside the other value on the same seeds.

    python benchmarks/sld_warmup.py --warmup 15 --seed 9600 [--repository build/repository/cpu] [--requests 200]

Runs `t2iguard eval regeneration --sets t2i --methods policy` in-process with the policy's
`regeneration.sld_warmup` set to {strong: W} (of 50; the SLD paper's strong: 7, which tiny ships)
for this run only, and writes the figures to build/eval/tune-SEED-warmW.json (and the eval's pictures beside it).
About 4 minutes per 200 requests on 2 cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from t2iguard.contract.policy import Policy
from t2iguard.evaluation.regeneration import evaluate


def with_warmup(policy: Policy, warmup: int) -> Policy:
    """`policy` (as its profile runs it) with SLD strong's warm-up `warmup` steps of 50."""
    regeneration = policy.regeneration.model_copy(update={"sld_warmup": {"strong": warmup}})
    return policy.model_copy(update={"regeneration": regeneration})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warmup", type=int, required=True, help="strong's warm-up steps, of 50")
    ap.add_argument("--seed", type=int, required=True, help="first seed of the t2i requests")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--repository", type=Path, default=Path("build/repository/cpu"))
    args = ap.parse_args()
    out = Path(f"build/eval/tune-{args.seed}-warm{args.warmup}")
    result = evaluate(args.repository, out, n=args.requests, seed=args.seed, methods=("policy",), sets=("t2i",),
                      policy=lambda p: with_warmup(p, args.warmup))
    t2i = result["methods"]["policy"]["t2i"]
    out.with_suffix(".json").write_text(json.dumps(result["methods"], indent=1, default=str))
    judge = t2i["independent_judge"]
    print(f"strong warm-up {args.warmup}/50, seeds {args.seed}+: judge {judge['first_attempt']:.1%} -> "
          f"{judge['delivered']:.1%} delivered, refused {t2i['refused']:.1%}, "
          f"shape kept {t2i['attribute_retention']['shape']:.1%}")


if __name__ == "__main__":
    main()
