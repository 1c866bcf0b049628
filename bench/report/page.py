"""report.md and report.html from one list of blocks, so both hold the same content.

report.html is self-contained and works opened from disk: CSS and JavaScript inline, every plot embedded (SVG,
text stays text and the file stays small), the explorer's plotting library inlined; its links (PNG, SVG, CSV,
LaTeX files) point at files written next to it. report.md references the PNGs by relative path.

HTML tables are split by model × task, each in its own box that scrolls sideways (the page never does), sortable
by clicking a header, and folded when longer than FOLD_ROWS.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

from bench.report.answer import Card
from bench.report.plots.style import Plot
from bench.report.render import Table, to_html, to_markdown

FOLD_ROWS = 12


@dataclass
class Block:
    kind: str  # heading | text | list | table | plot | cards | html (raw, HTML only; markdown gets `links` text)
    content: object
    links: tuple = ()  # (text, path) pairs, paths relative to the report folder
    anchor: str = ""  # id of a heading, for the navigation bar


CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1400px;margin:0 auto;padding:0 16px 2em;
color:#222;line-height:1.4;overflow-x:hidden}
h1{font-size:1.35em;margin:0.3em 0 0}h2{scroll-margin-top:2.2em}
h2{margin-top:1.6em;border-bottom:1px solid #ccc;font-size:1.25em}
h3{font-size:1.02em;margin:0.8em 0 0.3em}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:4px 0;font-size:0.85em;z-index:5}
nav a{margin-right:1em;color:#235;text-decoration:none}nav a:hover{text-decoration:underline}
.sub{color:#555;font-size:0.85em;margin:0 0 0.5em}
table{border-collapse:collapse;font-size:0.8em;margin:0.3em 0}
th,td{padding:2px 7px;border-bottom:1px solid #e2e2e2;text-align:left;white-space:nowrap}
th{border-bottom:2px solid #444;background:#f6f6f6}td.r,th.r{text-align:right}
table.sortable th{cursor:pointer}table.sortable th[aria-sort=ascending]::after{content:" ▲"}
table.sortable th[aria-sort=descending]::after{content:" ▼"}
tr.group td{border-top:2px solid #999}.na{color:#999}.note{font-size:0.82em;color:#555;margin:0.2em 0}
.scroll{overflow-x:auto;max-width:100%}
details{margin:0.3em 0 0.6em}summary{cursor:pointer;font-weight:600;font-size:0.9em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:0.85em;color:#444}
.links{font-size:0.8em}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:0.3em 0}
.card{flex:1 1 440px;border:1px solid #ccd;border-radius:6px;padding:6px 10px;background:#fafbfd}
.card.empty{flex:0 1 250px}
.card h3{margin:0.1em 0 0.2em;font-size:0.95em}.card p{margin:0.2em 0;font-size:0.85em}
.card table{font-size:0.76em;width:100%}.card th,.card td{padding:1px 4px}.card .note{font-size:0.76em}
.main-plot{margin:0.2em 0}.main-plot h3{margin:0.2em 0}
.main-plot img{width:100%;max-height:440px;object-fit:contain;border:none}
#answer{margin-top:0.4em}
"""

SORT_JS = """
(function () {
  // Click a header to sort by it; numbers sort as numbers ("1,234.5 ± 2" -> 1234.5), n/a always last.
  function key(cell) {
    var text = cell.textContent.trim();
    if (text === "" || text === "n/a") return null;
    var num = parseFloat(text.replace(/,/g, "").replace(/^\\[/, ""));
    return isNaN(num) ? text.toLowerCase() : num;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th, column) {
      th.addEventListener("click", function () {
        var up = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[column]), y = key(b.cells[column]);
          if (x === null || y === null) return (x === null) - (y === null);
          var order = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
          return up ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();
"""


def _links_md(links) -> str:
    return " · ".join(f"[{text}]({path})" for text, path in links)


def _links_html(links) -> str:
    return " · ".join(f'<a href="{html.escape(str(path))}">{html.escape(text)}</a>' for text, path in links)


def _embedded(path: Path) -> str:
    """The SVG beside a plot's PNG as a data URI (a tenth of the PNG's bytes); the PNG where there is no SVG."""
    svg = path.with_suffix(".svg")
    if svg.is_file():
        return "data:image/svg+xml;base64," + base64.b64encode(svg.read_bytes()).decode("ascii")
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# --- one renderer per block kind: (markdown, html) ------------------------------------------------------------------

def _card_md(card: Card) -> str:
    text = f"### {card.title}\n\n" + "".join(f"{line}\n\n" for line in card.lines)
    text += to_markdown(card.table) + "\n" if card.table else ""
    return text + "".join(f"{note}\n\n" for note in card.notes)


def _card_html(card: Card) -> str:
    body = "".join(f"<p>{html.escape(line)}</p>" for line in card.lines)
    body += _table_html(card.table, sortable=False) if card.table else ""
    body += "".join(f'<p class="note">{html.escape(note)}</p>' for note in card.notes)
    cls = "card" if card.table else "card empty"  # no tie set: a narrow card leaves room to the others
    return f'<div class="{cls}"><h3>{html.escape(card.title)}</h3>{body}</div>'


def _plot_md(plot: Plot) -> str:
    return (f"### {plot.title}\n\n![{plot.title}]({plot.files[0].parent.name}/{plot.files[0].name})\n\n"
            f"{plot.caption}\n")


def _plot_html(plot: Plot, css_class: str = "") -> str:
    cls = f' class="{css_class}"' if css_class else ""
    return (f"<figure{cls}><h3>{html.escape(plot.title)}</h3><img alt=\"{html.escape(plot.title)}\" "
            f"src=\"{_embedded(plot.files[0])}\"><figcaption>{html.escape(plot.caption)}</figcaption></figure>")


def _table_html(table: Table, sortable: bool = True) -> str:
    text = to_html(table)
    if sortable:
        text = text.replace("<table>", '<table class="sortable">', 1)
    return f'<div class="scroll">{text}</div>'


def _grouped_html(table: Table) -> str:
    """The table split by its group columns (model × task), one sortable box each, long ones folded."""
    groups: dict[tuple, list] = {}
    for row in table.rows:
        groups.setdefault(tuple(table.cells(row)[i].value for i in range(table.group_columns)), []).append(row)
    out = [f"<h3>{html.escape(table.title)}</h3>"]
    if table.group_columns == 0 or len(groups) < 2 and len(table.rows) <= FOLD_ROWS:
        return out[0] + _table_html(table)
    drop = table.group_columns
    for key, rows in groups.items():
        part = Table(table.name, table.title, table.columns[drop:], [r[drop:] for r in rows], table.frame,
                     text_columns=max(0, table.text_columns - drop))
        opened = " open" if len(rows) <= FOLD_ROWS else ""
        summary = f"{' / '.join(key)}: {len(rows)} row{'s' if len(rows) != 1 else ''}"
        out.append(f"<details{opened}><summary>{html.escape(summary)}</summary>{_table_html(part)}</details>")
    out += [f'<p class="note">{html.escape(n)}</p>' for n in table.notes]
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escaped text with Markdown's **bold** kept as bold, so one sentence serves report.md and report.html."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


RENDERERS = {
    "heading": (lambda c: f"## {c}\n", None),  # html: with its anchor, below
    "text": (lambda c: f"{c}\n", lambda c: f"<p>{_inline(c)}</p>"),
    "sub": (lambda c: f"{c}\n", lambda c: f'<p class="sub">{html.escape(c)}</p>'),
    "list": (lambda c: "\n".join(f"- {item}" for item in c) + "\n",
             lambda c: "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in c) + "</ul>"),
    "table": (lambda c: f"**{c.title}**\n\n{to_markdown(c)}", _grouped_html),
    "plot": (_plot_md, _plot_html),
    "main-plot": (_plot_md, lambda c: _plot_html(c, "main-plot")),
    "cards": (lambda c: "\n".join(_card_md(card) for card in c),
              lambda c: '<div class="cards">' + "".join(_card_html(card) for card in c) + "</div>"),
    "html": (lambda c: "", lambda c: c),
}


def markdown(title: str, blocks: list[Block]) -> str:
    out = [f"# {title}\n"]
    for block in blocks:
        text = RENDERERS[block.kind][0](block.content)
        if text:
            out.append(text)
        if block.links:
            out.append(_links_md(block.links) + "\n")
    return "\n".join(out)


def page(title: str, blocks: list[Block], scripts: tuple[str, ...] = ()) -> str:
    """The HTML page: a navigation bar over the headings, the blocks, then the scripts (sorting, explorer)."""
    nav = "".join(f'<a href="#{b.anchor}">{html.escape(b.content)}</a>' for b in blocks
                  if b.kind == "heading" and b.anchor)
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
           f"<meta name=\"viewport\" content=\"width=device-width\"><style>{CSS}</style></head><body>",
           f"<nav>{nav}</nav><h1>{html.escape(title)}</h1>"]
    for block in blocks:
        if block.kind == "heading":
            anchor = f' id="{block.anchor}"' if block.anchor else ""
            out.append(f"<h2{anchor}>{html.escape(block.content)}</h2>")
        else:
            out.append(RENDERERS[block.kind][1](block.content))
        if block.links:
            out.append(f'<p class="links">{_links_html(block.links)}</p>')
    out += [f"<script>{SORT_JS}</script>", *scripts, "</body></html>"]
    return "\n".join(out)


def write(folder: Path, title: str, blocks: list[Block], scripts: tuple[str, ...] = ()) -> tuple[Path, Path]:
    md, page_path = folder / "report.md", folder / "report.html"
    md.write_text(markdown(title, blocks))
    page_path.write_text(page(title, blocks, scripts))
    return md, page_path
