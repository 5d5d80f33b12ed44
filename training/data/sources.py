"""The public sources of the prompt-classifier corpus: a committed manifest, a cache outside git.

`sources.json` (next to this file) records facts only: per cached file its repository, commit, path,
licence, sha256, size, row count, format and label mapping; `SOURCES.md` is the data card that explains
them. Third-party text never enters git: `import_from_mirror` copies each file at its exact commit out of
a local bare copy of its repository into `cache_dir()/<id>/<basename>` (`download` fetches the same
bytes from the public raw address where a network allows), refusing any file whose sha256 differs from
the manifest. Training reads only from the cache; `verify` says which files are present, missing or
mismatched.

Kinds: `t2i-prompts`, `unsafe-prompts`, `toxic-text`, `names`, `occupations`, and `eval` (a copy of one
of the evaluation sets, named by `eval_set`: kept only to find and drop its near-duplicates from training).
Use: `train`, `benign-only` (licence not stated: read only as benign text), `held-out` (never trained on:
an extra measurement), `lexicon` (word lists, not examples), `eval`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from t2iguard.export.build import cache_root

MANIFEST = Path(__file__).with_name("sources.json")
CARD = Path(__file__).with_name("SOURCES.md")
KINDS = ("t2i-prompts", "unsafe-prompts", "toxic-text", "names", "occupations", "eval")
USES = ("train", "benign-only", "held-out", "lexicon", "eval")
#: the public raw address of repo@commit/path (`download`)
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"


class SourceError(RuntimeError):
    """A source file could not be laid into the cache (absent from the copy, or its digest differs)."""


class DigestMismatch(SourceError):
    """The bytes found are not the bytes the manifest names."""


@dataclass(frozen=True)
class Source:
    id: str
    kind: str
    use: str
    repo: str
    commit: str
    path: str
    licence: str
    sha256: str
    bytes: int
    rows: int
    format: str  # csv | csv-semicolon | tsv | txt | jsonl | jsonl-gz | json | toxigen | nibbler
    text_column: str | None = None
    eval_set: str | None = None  # for kind == "eval": which evaluation set this file is a copy of
    mapping: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def cached(self, root: Path | None = None) -> Path:
        """Where this file lies in the cache (whether or not it is there)."""
        return (root or cache_dir()) / self.id / self.filename

    @property
    def url(self) -> str:
        return RAW_URL.format(repo=self.repo, commit=self.commit, path=self.path)


@dataclass
class Status:
    present: list[Source] = field(default_factory=list)
    missing: list[Source] = field(default_factory=list)
    mismatched: list[tuple[Source, str]] = field(default_factory=list)  # (source, the digest found)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.mismatched


def cache_dir() -> Path:
    """The sources cache: `$T2IGUARD_CACHE/sources` (default `~/.cache/t2iguard/sources`)."""
    return cache_root() / "sources"


def load_manifest(path: Path = MANIFEST) -> list[Source]:
    """The committed manifest as `Source` records; refuses unknown kinds/uses and repeated ids."""
    entries = json.loads(path.read_text())["sources"]
    out, seen = [], set()
    for e in entries:
        s = Source(**e)
        if s.kind not in KINDS or s.use not in USES:
            raise ValueError(f"source {s.id!r}: kind {s.kind!r} / use {s.use!r} not in {KINDS} / {USES}")
        if (s.kind == "eval") != (s.eval_set is not None) or (s.kind == "eval") != (s.use == "eval"):
            raise ValueError(f"source {s.id!r}: an eval copy needs kind 'eval', use 'eval' and an eval_set")
        if s.id in seen:
            raise ValueError(f"source id {s.id!r} is listed twice")
        seen.add(s.id)
        out.append(s)
    return out


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_dir(mirror_root: Path, repo: str) -> Path:
    """The bare git directory of `repo` inside a mirror folder laid out as `<root>/<owner>+<name>/...`:
    the folder itself when it is a git directory, else the first child that is one (e.g. `repo`, `x.git`)."""
    folder = Path(mirror_root) / repo.replace("/", "+")
    candidates = [folder] + (sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else [])
    for c in candidates:
        if (c / "HEAD").is_file() and (c / "objects").is_dir():
            return c
        if (c / ".git" / "HEAD").is_file():
            return c / ".git"
    raise SourceError(f"{repo}: no git directory under {folder}")


def _write(src: Source, data: bytes, root: Path) -> Path:
    found = sha256_of(data)
    if found != src.sha256:
        raise DigestMismatch(f"{src.id}: {src.repo}@{src.commit[:12]}:{src.path} has sha256 {found}, "
                          f"the manifest says {src.sha256}; not written")
    dst = src.cached(root)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(dst.suffix + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, dst)
    return dst


def _lay(sources: Iterable[Source], fetch: Callable[[Source], bytes], root: Path | None, force: bool,
         progress: Callable[[Source, str], None] | None) -> Status:
    root = root or cache_dir()
    status = Status()
    for src in sources:
        dst = src.cached(root)
        if dst.is_file() and not force and file_digest(dst) == src.sha256:
            status.present.append(src)
            outcome = "cached"
        else:
            try:
                _write(src, fetch(src), root)
                status.present.append(src)
                outcome = "imported"
            except DigestMismatch as e:
                status.mismatched.append((src, str(e)))
                outcome = "mismatch"
            except SourceError as e:
                status.missing.append(src)
                outcome = f"missing ({e})"
        if progress:
            progress(src, outcome)
    return status


def import_from_mirror(mirror_root: Path | str, sources: Iterable[Source] | None = None, root: Path | None = None,
                       force: bool = False, progress: Callable[[Source, str], None] | None = None) -> Status:
    """Lay every source into the cache from local bare copies of their repositories
    (`git --git-dir <mirror_root>/<owner>+<name>/<git dir> show <commit>:<path>`). A file already cached with
    the right digest is kept; a file whose digest differs from the manifest is refused (reported as mismatched)."""

    def fetch(src: Source) -> bytes:
        gd = git_dir(Path(mirror_root), src.repo)
        r = subprocess.run(["git", "--git-dir", str(gd), "show", f"{src.commit}:{src.path}"],
                           capture_output=True, check=False)
        if r.returncode:
            raise SourceError(f"git show {src.commit[:12]}:{src.path}: {r.stderr.decode(errors='replace').strip()}")
        return r.stdout

    return _lay(load_manifest() if sources is None else sources, fetch, root, force, progress)


def download(sources: Iterable[Source] | None = None, root: Path | None = None, force: bool = False,
             progress: Callable[[Source, str], None] | None = None, timeout: float = 60.0) -> Status:
    """Lay every source into the cache from its public raw address (repo@commit/path), digest-checked."""

    def fetch(src: Source) -> bytes:
        try:
            with urllib.request.urlopen(src.url, timeout=timeout) as r:  # noqa: S310 (fixed https address)
                return r.read()
        except OSError as e:
            raise SourceError(f"{src.url}: {e}") from None

    return _lay(load_manifest() if sources is None else sources, fetch, root, force, progress)


def verify(sources: Iterable[Source] | None = None, root: Path | None = None) -> Status:
    """Which manifest files are in the cache with the right digest, missing, or different (no writes)."""
    status = Status()
    for src in load_manifest() if sources is None else sources:
        path = src.cached(root)
        if not path.is_file():
            status.missing.append(src)
            continue
        found = file_digest(path)
        if found == src.sha256:
            status.present.append(src)
        else:
            status.mismatched.append((src, found))
    return status
