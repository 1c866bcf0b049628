"""A table as cells (value, ± std, best mark), rendered to Markdown, HTML and LaTeX (booktabs), plus its CSV.

Own writers because pandas' to_markdown needs `tabulate` and its LaTeX writer cannot mix escaped text with bold
marks and $\\pm$; the CSV holds the raw numbers (means, stds, counts), written by pandas.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.results.metrics import NA

NUMBER = re.compile(r"^[-+]?[0-9][0-9,.]*(e[-+]?[0-9]+)?\s*(%|×|[KMB]|[KMGT]iB|B)?$")


@dataclass
class Cell:
    value: str  # plain text, no markup
    std: str | None = None  # printed as "value ± std"
    best: bool = False
    note: str = ""  # a footnote mark such as "†", printed after the value

    @property
    def na(self) -> bool:
        return self.value == NA


@dataclass
class Table:
    name: str  # file stem: <name>.md, .csv, .tex
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    frame: pd.DataFrame  # raw numbers for the CSV
    group_columns: int = 0  # leading columns printed once per group (model, task) rather than on every row
    text_columns: int = 1  # leading columns always aligned left; the others right when every cell is a number

    def right_aligned(self) -> list[bool]:
        rows = [self.cells(r) for r in self.rows]
        return [i >= self.text_columns and all(NUMBER.match(r[i].value) for r in rows if r[i].value and not r[i].na)
                for i in range(len(self.columns))]
    notes: list[str] = field(default_factory=list)

    def cells(self, row: list) -> list[Cell]:
        return [c if isinstance(c, Cell) else Cell(str(c)) for c in row]

    def grouped_rows(self):
        """Rows with repeated leading group values blanked; True where a new group starts."""
        previous = None
        for row in self.rows:
            row = self.cells(row)
            key = tuple(c.value for c in row[: self.group_columns])
            starts = previous is not None and key[:1] != previous[:1]
            shown = [Cell("") if i < self.group_columns and previous and key[: i + 1] == previous[: i + 1] else c
                     for i, c in enumerate(row)]
            previous = key
            yield starts, shown


LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                 "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                 "<": r"\textless{}", ">": r"\textgreater{}",
                 "±": r"$\pm$", "×": r"$\times$", "≤": r"$\leq$", "≥": r"$\geq$", "†": r"$^\dagger$",
                 "✓": r"\checkmark{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _md_text(text: str) -> str:
    return str(text).replace("|", r"\|").replace("\n", " ")


def cell_markdown(cell: Cell) -> str:
    text = _md_text(cell.value) + (f" ± {_md_text(cell.std)}" if cell.std else "") + cell.note
    return f"**{text}**" if cell.best and text else text


def cell_html(cell: Cell) -> str:
    text = html.escape(cell.value) + (f" ± {html.escape(cell.std)}" if cell.std else "") + html.escape(cell.note)
    if cell.na:
        return f'<span class="na">{text}</span>'
    return f"<b>{text}</b>" if cell.best else text


def cell_latex(cell: Cell) -> str:
    std = f" $\\pm$ {latex_escape(cell.std)}" if cell.std else ""
    text = latex_escape(cell.value) + std + latex_escape(cell.note)
    return f"\\textbf{{{text}}}" if cell.best and text else text


def to_markdown(table: Table) -> str:
    lines = ["| " + " | ".join(_md_text(c) for c in table.columns) + " |",
             "|" + "|".join("--:" if right else ":--" for right in table.right_aligned()) + "|"]
    for _, row in table.grouped_rows():
        lines.append("| " + " | ".join(cell_markdown(c) for c in row) + " |")
    notes = [f"\n{n}" for n in table.notes]
    return "\n".join(lines) + "\n" + "\n".join(notes) + ("\n" if notes else "")


def to_html(table: Table) -> str:
    align = [' class="r"' if right else "" for right in table.right_aligned()]
    head = "".join(f"<th{a}>{html.escape(c)}</th>" for a, c in zip(align, table.columns))
    body = []
    for starts, row in table.grouped_rows():
        cls = ' class="group"' if starts else ""
        body.append(f"<tr{cls}>" + "".join(f"<td{a}>{cell_html(c)}</td>" for a, c in zip(align, row)) + "</tr>")
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in table.notes)
    return f'<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body) + "\n</tbody></table>\n" + notes


def to_latex(table: Table) -> str:
    """A booktabs table; needs \\usepackage{booktabs,graphicx} (and amssymb for \\checkmark where used)."""
    spec = "".join("r" if right else "l" for right in table.right_aligned())
    lines = ["% " + table.title, "% needs \\usepackage{booktabs,graphicx}", "\\begin{table}[t]", "\\centering",
             f"\\caption{{{latex_escape(table.title)}}}", f"\\label{{tab:{re.sub(r'[^A-Za-z0-9-]', '-', table.name)}}}",
             "\\resizebox{\\linewidth}{!}{%", f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
             " & ".join(latex_escape(c) for c in table.columns) + r" \\", "\\midrule"]
    for starts, row in table.grouped_rows():
        if starts:
            lines.append("\\midrule")
        lines.append(" & ".join(cell_latex(c) for c in row) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}}"]
    lines += [f"\\par\\smallskip{{\\footnotesize {latex_escape(n)}}}" for n in table.notes]
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def write_table(table: Table, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {ext: folder / f"{table.name}.{ext}" for ext in ("md", "csv", "tex")}
    paths["md"].write_text(f"**{table.title}**\n\n" + to_markdown(table))
    table.frame.to_csv(paths["csv"], index=False)
    paths["tex"].write_text(to_latex(table))
    return paths
