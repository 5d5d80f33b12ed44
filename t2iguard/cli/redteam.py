"""`t2iguard redteam`: the automated attacker (`t2iguard.evaluation.redteam`) from the command line.

Registered in `t2iguard.cli.app` as `app.command()(redteam)`; heavy imports stay inside the function so
that `t2iguard --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from t2iguard.contract.errors import BAD_INPUT, OTHER, T2IGuardError


def redteam(
    url: Annotated[str, typer.Option("--url", help="Triton gRPC endpoint host:port (any profile).")] = "localhost:8001",
    categories: Annotated[str, typer.Option(help="Comma-separated policy categories to attack (default: all).")] = "",
    seeds_per_category: Annotated[int, typer.Option(min=1, help="Seed unsafe prompts drawn per category "
                                                               "(evaluation/redteam_seeds.py has 5).")] = 4,
    mutations: Annotated[str, typer.Option(help="Comma-separated operators: leet, homoglyph, separators, synonym, "
                                                "story, padding, language-mix (default: all).")] = "",
    budget: Annotated[int, typer.Option(min=1, help="Screen queries the search may spend per seed.")] = 60,
    beam: Annotated[int, typer.Option(min=1, help="Chains kept per search level (1: greedy).")] = 3,
    depth: Annotated[int, typer.Option(min=1, help="Most operators in one chain.")] = 4,
    variants: Annotated[int, typer.Option(min=1, help="Random draws of each single operator per seed.")] = 2,
    generate: Annotated[int, typer.Option(min=0, help="Final prompts sent through safe_t2i (client.generate, "
                                                      "image checks included), stratified over categories; "
                                                      "0 skips that layer.")] = 24,
    steps: Annotated[int | None, typer.Option(help="Denoising steps of those generations (default: the "
                                                   "server's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice: same seed, options and server, "
                                           "same figures.")] = 0,
    out: Annotated[Path, typer.Option(help="Directory for redteam.json and redteam.png.")] = Path("build/eval/redteam"),
    save_bypasses: Annotated[bool, typer.Option(help="Append the prompt-guard bypasses found to --cases as open "
                                                     "regression cases (duplicates by normalised text skipped).")]
    = False,
    cases: Annotated[Path | None, typer.Option(help="The regression cases file (default: "
                                                    "evaluation/redteam_cases.jsonl).")] = None,
) -> None:
    """Red-team a served stack: mutate seed unsafe prompts per category (leetspeak, homoglyphs, separators,
    synonyms and euphemisms, story/role-play framing, benign padding, language mixing), search black-box
    for operator chains that lower the prompt guard's max category score (beam search, a query budget per
    seed), and report the attack success rate per layer, category and mutation: a table, JSON and a plot.

    Success at the prompt guard (`screen`): the mutated unsafe prompt is allowed (not blocked, not
    rewritten). Success through safe_t2i (`generate`, on a sample): the request is not refused. Details:
    the docstring of t2iguard/evaluation/redteam.py.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from t2iguard.client import SafeT2IClient
    from t2iguard.contract.taxonomy import CATEGORIES
    from t2iguard.evaluation import redteam as R

    err = Console(stderr=True, soft_wrap=True)
    chosen = tuple(c.strip() for c in categories.split(",") if c.strip()) or CATEGORIES
    ops = tuple(m.strip() for m in mutations.split(",") if m.strip()) or R.MUTATIONS
    if set(chosen) - set(CATEGORIES):
        raise typer.BadParameter(f"{categories!r}: choose from {', '.join(CATEGORIES)}", param_hint="--categories")
    if set(ops) - set(R.MUTATIONS):
        raise typer.BadParameter(f"{mutations!r}: choose from {', '.join(R.MUTATIONS)}", param_hint="--mutations")
    config = R.Config(chosen, seeds_per_category, budget, beam, depth, variants, generate, steps, seed, ops,
                      extra={"url": url})
    try:
        with SafeT2IClient(url, client_id="redteam") as client, Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=err) as progress:
            tasks: dict[str, int] = {}

            def step(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = progress.add_task(phase, total=total)
                progress.update(tasks[phase], completed=done, total=total)

            rep = R.run(client, config, progress=step)
    except T2IGuardError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(e.kind.exit_code) from None
    except ValueError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(BAD_INPUT.exit_code) from None
    except Exception as e:  # noqa: BLE001 - connection errors, reported with exit 1
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(OTHER.exit_code) from None

    written = R.save(rep, out)
    console = Console()
    for table in R.tables(rep):
        console.print(table)
    err.print(f"{rep['queries']} screen queries; wrote {written[0]} and {written[1]}")
    if save_bypasses:
        added = R.append_cases(R.bypass_cases(rep), cases or R.CASES)
        err.print(f"saved {len(added)} new bypass case(s) to {cases or R.CASES}")
