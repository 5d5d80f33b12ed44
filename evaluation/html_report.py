"""One self-contained HTML page from the sections' own outputs (`t2iguard eval all`).

Each section's `report.md` is rendered with markdown-it-py (rich's own Markdown parser, so no new dependency;
tables on, raw HTML off), its images are embedded as base64 PNG, and the section's other plots follow. Tables
that a command prints with rich become Markdown first (`rich_markdown`). Text from the reports is escaped;
nothing on the page loads from elsewhere.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

STATUS_COLOUR = {"ok": "#1a7f37", "failed": "#cf222e", "skipped": "#9a6700"}
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #1f2328; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
code, pre { font: 12px ui-monospace, monospace; background: #f6f8fa; }
pre { padding: 8px; overflow-x: auto; white-space: pre-wrap; }
img { max-width: 100%; border: 1px solid #d0d7de; margin: 0.4em 0; }
section { border-top: 2px solid #d0d7de; margin-top: 2em; }
.status { font-weight: 600; }
.note { background: #fff8c5; padding: 4px 8px; margin: 4px 0; }
figcaption { font-size: 12px; color: #59636e; }
"""


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _escape_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rich_markdown(tables: list) -> str:
    """rich Tables -> Markdown tables (title as a bold line above each), for reports that print with rich."""
    from rich.text import Text

    def plain(cell) -> str:
        return _escape_cell(cell.plain if isinstance(cell, Text) else str(cell))

    out = []
    for table in tables:
        if table.title:
            out += [f"**{plain(table.title)}**", ""]
        out.append("| " + " | ".join(plain(c.header) for c in table.columns) + " |")
        out.append("|" + "---|" * len(table.columns))
        for row in zip(*(list(c.cells) for c in table.columns), strict=True):
            out.append("| " + " | ".join(plain(cell) for cell in row) + " |")
        out.append("")
    return "\n".join(out)


def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def inline_html(text: str) -> str:
    """One line of Markdown (code spans, emphasis) -> HTML, raw HTML escaped."""
    return _markdown().renderInline(text)


def markdown_html(text: str, folder: Path, demote: int = 2) -> tuple[str, set[str]]:
    """Markdown -> HTML (tables on, raw HTML escaped); headings `demote` levels down (under the page's own);
    images that name a PNG in `folder` are embedded. Returns the HTML and the names of the images embedded."""
    md = _markdown()
    tokens = md.parse(text)
    used: set[str] = set()
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + demote, 6)}"
        for child in token.children or []:
            src = child.attrGet("src") if child.type == "image" else None
            if src and "/" not in str(src) and (folder / str(src)).is_file():
                child.attrSet("src", png_data_uri(folder / str(src)))
                used.add(str(src))
    return md.renderer.render(tokens, md.options, {}), used


def _figure(path: Path) -> str:
    return (f'<figure><img alt="{html.escape(path.name)}" src="{png_data_uri(path)}">'
            f"<figcaption>{html.escape(path.name)}</figcaption></figure>")


def section_html(key: str, title: str, entry: dict, folder: Path, trace: str | None) -> str:
    """One section: heading and status, the command that reproduces it, notes, error, its report and plots."""
    colour = STATUS_COLOUR.get(entry["status"], "#000")
    parts = [f'<section id="{html.escape(key)}"><h2>{html.escape(title)} '
             f'<span class="status" style="color:{colour}">[{html.escape(entry["status"])}]</span></h2>',
             f"<p>{entry['seconds']:.0f} s. Reproduce this section alone:</p>"
             f"<pre>{html.escape(entry['command'])}</pre>"]
    parts += [f'<p class="note">{inline_html(n)}</p>' for n in entry["notes"]]
    if entry.get("error"):
        parts.append(f"<p><b>Error:</b></p><pre>{html.escape(entry['error'])}</pre>")
        if trace:
            parts.append(f"<details><summary>traceback</summary><pre>{html.escape(trace)}</pre></details>")
    used: set[str] = set()
    report = folder / "report.md"
    if entry["status"] == "ok" and report.is_file():
        body, used = markdown_html(report.read_text(encoding="utf-8"), folder)
        parts.append(body)
    if entry["status"] == "ok":
        parts += [_figure(p) for p in sorted(folder.glob("*.png")) if p.name not in used]
    parts.append("</section>")
    return "\n".join(parts)


def header_html(report: dict) -> str:
    """Provenance and a summary table of the sections."""
    rows = [("date (UTC)", report["date"]), ("size", report["size"]),
            ("overrides", json.dumps(report["overrides"]) if report["overrides"] else "-"),
            ("t2iguard", f"{report['t2iguard_version']} (commit {report['commit'] or 'unknown'})"),
            ("repository", f"{report['repository']} (profile {report['profile']})"),
            ("served stack (red team)", report["url"] or "a tritonserver started by `eval all` over the repository"),
            ("policy", f"{report['policy_version']} (sha256 {report['policy_sha256']})"),
            ("weights (served graphs)", f"sha256 {report['weights_sha256']} over {len(report['graphs_sha256'])} "
                                        "model.onnx files (each in report.json)")]
    out = ["<table>"] + [f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows]
    out += ["</table>", "<table><tr><th>section</th><th>status</th><th>seconds</th></tr>"]
    for key, entry in report["sections"].items():
        colour = STATUS_COLOUR.get(entry["status"], "#000")
        out.append(f'<tr><td><a href="#{html.escape(key)}">{html.escape(key)}</a></td>'
                   f'<td style="color:{colour}">{html.escape(entry["status"])}</td>'
                   f'<td>{entry["seconds"]:.0f}</td></tr>')
    out.append("</table>")
    return "\n".join(out)


def write_html(report: dict, extras: dict[str, tuple[str, str | None]], out: Path, path: Path) -> None:
    """The page: provenance, summary, then each section from `out/<key>/`; `extras[key]` = (title, traceback)."""
    title = f"t2iguard evaluation, {report['size']}, {report['date']}"
    sections = [section_html(key, extras[key][0], entry, out / key, extras[key][1])
                for key, entry in report["sections"].items()]
    path.write_text("\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>", header_html(report), *sections,
        "</body></html>"]), encoding="utf-8")
