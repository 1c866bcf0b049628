"""report.md and report.html from one list of blocks, so both hold the same content.

report.html is self-contained: CSS inline and every PNG embedded as base64; its links (SVG, CSV, LaTeX files)
point at files written next to it. report.md references the same PNGs by relative path.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from bench.report.plots.style import Plot
from bench.report.render import Table, to_html, to_markdown


@dataclass
class Block:
    kind: str  # heading | text | list | table | plot
    content: object
    links: tuple = ()  # (text, path) pairs, paths relative to the report folder


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:0.82em;margin:0.6em 0;display:block;overflow-x:auto}
th,td{padding:3px 8px;border-bottom:1px solid #e2e2e2;text-align:left;white-space:nowrap}
th{border-bottom:2px solid #444;background:#f6f6f6}td.r,th.r{text-align:right}
tr.group td{border-top:2px solid #999}.na{color:#999}.note{font-size:0.85em;color:#555;margin:0.2em 0}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:0.9em;color:#444}
.links{font-size:0.85em}
"""


def _links_md(links) -> str:
    return " · ".join(f"[{text}]({path})" for text, path in links)


def _links_html(links) -> str:
    return " · ".join(f'<a href="{html.escape(str(path))}">{html.escape(text)}</a>' for text, path in links)


def markdown(title: str, blocks: list[Block]) -> str:
    out = [f"# {title}\n"]
    for block in blocks:
        if block.kind == "heading":
            out.append(f"## {block.content}\n")
        elif block.kind == "text":
            out.append(f"{block.content}\n")
        elif block.kind == "list":
            out.append("\n".join(f"- {item}" for item in block.content) + "\n")
        elif block.kind == "table":
            table: Table = block.content
            out.append(f"**{table.title}**\n\n{to_markdown(table)}")
        elif block.kind == "plot":
            plot: Plot = block.content
            out.append(f"### {plot.title}\n\n![{plot.title}]({plot.files[0].parent.name}/{plot.files[0].name})\n\n"
                       f"{plot.caption}\n")
        if block.links:
            out.append(_links_md(block.links) + "\n")
    return "\n".join(out)


def _embedded(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def page(title: str, blocks: list[Block]) -> str:
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
           f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for block in blocks:
        if block.kind == "heading":
            out.append(f"<h2>{html.escape(block.content)}</h2>")
        elif block.kind == "text":
            out.append(f"<p>{html.escape(block.content)}</p>")
        elif block.kind == "list":
            out.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in block.content) + "</ul>")
        elif block.kind == "table":
            out.append(f"<h3>{html.escape(block.content.title)}</h3>\n{to_html(block.content)}")
        elif block.kind == "plot":
            plot = block.content
            out.append(f"<figure><h3>{html.escape(plot.title)}</h3><img alt=\"{html.escape(plot.title)}\" "
                       f"src=\"{_embedded(plot.files[0])}\"><figcaption>{html.escape(plot.caption)}</figcaption></figure>")
        if block.links:
            out.append(f'<p class="links">{_links_html(block.links)}</p>')
    out.append("</body></html>")
    return "\n".join(out)


def write(folder: Path, title: str, blocks: list[Block]) -> tuple[Path, Path]:
    md, page_path = folder / "report.md", folder / "report.html"
    md.write_text(markdown(title, blocks))
    page_path.write_text(page(title, blocks))
    return md, page_path
