"""`t2iguard data`: lay the public sources of the prompt-classifier corpus into the cache, check them, count them.

The manifest (`training/data/sources.json`) names every file by repository, commit, path and sha256;
`training/data/SOURCES.md` is the data card. Third-party text lives only in the cache
($T2IGUARD_CACHE/sources, default ~/.cache/t2iguard/sources), never in git.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from t2iguard.contract.errors import BAD_INPUT, OTHER
from t2iguard.contract.taxonomy import CATEGORIES

app = typer.Typer(help="Public data sources of the prompt-classifier corpus: import, verify, count.",
                  no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)


def _summary(status, what: str) -> None:
    err.print(f"{what}: {len(status.present)} present, {len(status.missing)} missing, "
              f"{len(status.mismatched)} with a different sha256")
    for src in status.missing:
        err.print(f"  [yellow]missing[/yellow]  {src.id}  ({src.repo}@{src.commit[:12]}:{src.path})")
    for src, found in status.mismatched:
        err.print(f"  [red]mismatch[/red] {src.id}  {found}")


def _lay(fn, **kw):
    from t2iguard.training.data import sources as S

    manifest = S.load_manifest()
    with Progress(console=err) as progress:
        task = progress.add_task(f"laying {len(manifest)} files into {S.cache_dir()}", total=len(manifest))

        def step(src, outcome):
            progress.update(task, advance=1, description=f"{src.id}: {outcome}")

        return fn(sources=manifest, progress=step, **kw)


@app.command("import")
def import_(
    mirror: Annotated[Path, typer.Option(help="Folder of local bare git copies, one per repository, named "
                                              "`<owner>+<name>` (the git directory itself or one folder inside).")],
    force: Annotated[bool, typer.Option(help="Rewrite files already cached with the right digest.")] = False,
) -> None:
    """Copy every manifest file at its exact commit out of local repository copies into the cache,
    refusing any whose sha256 differs from the manifest. Exit 1 when a file is missing or differs."""
    from t2iguard.training.data import sources as S

    if not mirror.is_dir():
        err.print(f"[red]error:[/red] --mirror {mirror} is not a directory")
        raise typer.Exit(BAD_INPUT.exit_code)
    status = _lay(S.import_from_mirror, mirror_root=mirror, force=force)
    _summary(status, f"import from {mirror} into {S.cache_dir()}")
    if not status.complete:
        raise typer.Exit(OTHER.exit_code)


@app.command()
def download(
    force: Annotated[bool, typer.Option(help="Download files already cached with the right digest.")] = False,
) -> None:
    """Fetch every manifest file from its public raw address (repo@commit/path) where a network allows,
    digest-checked. Exit 1 when a file could not be fetched or differs."""
    from t2iguard.training.data import sources as S

    status = _lay(S.download, force=force)
    _summary(status, f"download into {S.cache_dir()}")
    if not status.complete:
        raise typer.Exit(OTHER.exit_code)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON on stdout.")] = False,
) -> None:
    """Which manifest files are in the cache with the manifest's sha256, missing, or different. Exit 1
    when a cached file differs from the manifest (missing files are allowed: the corpus then uses fewer)."""
    from t2iguard.training.data import sources as S

    manifest = S.load_manifest()
    st = S.verify(manifest)
    if as_json:
        print(json.dumps({"cache": str(S.cache_dir()), "present": [s.id for s in st.present],
                          "missing": [s.id for s in st.missing],
                          "mismatched": {s.id: found for s, found in st.mismatched}}, indent=1))
    else:
        table = Table("id", "kind", "use", "repository@commit", "rows", "state", title=str(S.cache_dir()))
        for column in table.columns:
            column.overflow = "fold"  # ids and repositories whole, wrapped on narrow terminals
        state = {s.id: "[green]ok[/green]" for s in st.present}
        state.update({s.id: "[yellow]missing[/yellow]" for s in st.missing})
        state.update({s.id: "[red]sha256 differs[/red]" for s, _ in st.mismatched})
        for s in manifest:
            table.add_row(s.id, s.kind, s.use, f"{s.repo}@{s.commit[:12]}", str(s.rows), state[s.id])
        Console().print(table)
        _summary(st, "cache")
    if st.mismatched:
        raise typer.Exit(OTHER.exit_code)


@app.command()
def corpus(
    embedding: Annotated[str, typer.Option(help="Eval near-duplicate check by MiniLM embedding: `all` (embeds what "
                                                "is not cached yet: minutes on a CPU), `cached`, or `off`.")] = "all",
    seed: Annotated[int, typer.Option(help="Seed of the project's own generated data.")] = 0,
    rebuild: Annotated[bool, typer.Option(help="Rebuild even when this exact corpus is kept in the cache.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the report (counts per source and category) as JSON.")]
    = None,
    card: Annotated[Path | None, typer.Option(help="Also rewrite the generated tables (notes, per source, per "
                                              "category) of this data card, e.g. training/data/SOURCES.md.")]
    = None,
) -> None:
    """Build the training corpus (cached sources + the project's own data, eval near-duplicates dropped)
    and print counts per source and per category."""
    from t2iguard.training.data.corpus import Report
    from t2iguard.training.data.corpus import corpus as build

    if embedding not in ("all", "cached", "off"):
        err.print(f"[red]error:[/red] --embedding must be all, cached or off, not {embedding!r}")
        raise typer.Exit(BAD_INPUT.exit_code)
    if card and not card.is_file():
        err.print(f"[red]error:[/red] --card: {card} is not a file")
        raise typer.Exit(BAD_INPUT.exit_code)
    if card and (missing := Report(cache="", cache_present=False).missing_sections(card.read_text())):
        err.print(f"[red]error:[/red] --card: {card} has no '<!-- BEGIN {missing[0]} -->' ... END section")
        raise typer.Exit(BAD_INPUT.exit_code)
    rep = Report(cache="", cache_present=False)
    with err.status("building the corpus") as st:
        c = build(seed=seed, embedding=embedding, say=lambda m: st.update(m), report=rep, reuse=not rebuild)
    table = Table("source", "read", "kept", "dropped (reason: n)", title=f"{len(c.examples)} examples")
    for src in rep.read:
        dropped = ", ".join(f"{k}: {v}" for k, v in sorted(rep.dropped.get(src, {}).items()))
        table.add_row(src, str(rep.read[src]), str(rep.kept.get(src, 0)), dropped)
    Console().print(table)
    cats = Table("category", *rep.categories.keys(), title="examples per category and split (multi-label)")
    for c_ in ("benign", *CATEGORIES):
        cats.add_row(c_, *(str(rep.categories[s].get(c_, 0)) for s in rep.categories))
    Console().print(cats)
    for note in rep.notes:
        err.print(f"note: {note}")
    if out:
        out.write_text(json.dumps(rep.to_json(), indent=1))
    if card:
        try:
            rep.write_card(card)
        except (OSError, ValueError) as e:
            err.print(f"[red]error:[/red] --card: {e}")
            raise typer.Exit(BAD_INPUT.exit_code) from e
