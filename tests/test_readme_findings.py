"""README's findings table is the committed report's findings table, cell by cell, and that table is what the
committed records give today.

pytest tests/test_readme_findings.py
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.report import claims
from bench.report.build import sweep_name
from bench.report.load import load_trials, read_table
from bench.report.render import to_markdown

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "tradeoffs"


def markdown_table(text: str, first_column: str) -> list[list[str]]:
    """The cells of the Markdown table whose header starts with `first_column` (its separator row left out)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return [rows[0], *rows[2:]]


def first_difference(got: list[list[str]], want: list[list[str]]) -> str:
    for r, (got_row, want_row) in enumerate(zip(got, want)):
        for c, (a, b) in enumerate(zip(got_row, want_row)):
            if a != b:
                return f"row {r} ({want_row[0]!r}), column {c} ({want[0][c]!r}): {a!r}, the report has {b!r}"
    return f"{len(got)} rows of {len(got[0])} cells, the report has {len(want)} of {len(want[0])}"


def test_readme_findings_table_is_the_reports_cell_by_cell():
    readme = markdown_table((ROOT / "README.md").read_text(), claims.FIRST_COLUMN)
    report = markdown_table((REPORT / "tables" / "findings.md").read_text(), claims.FIRST_COLUMN)
    assert readme == report, "README's findings table differs from reports/tradeoffs: " + first_difference(readme,
                                                                                                          report)


def test_the_committed_findings_table_is_what_the_committed_records_give():
    """Read the sweep folders the report names in its first lines, check the findings again, compare."""
    source_line = (REPORT / "report.md").read_text().splitlines()[2]
    source = ROOT / re.search(r", from (\S+?)[;,]", source_line).group(1)
    latency_match = re.search(r"latency findings from (\S+?);", source_line)
    latency = ROOT / latency_match.group(1) if latency_match else None
    trials = load_trials(source, read_table(source))
    timed = load_trials(latency, read_table(latency)) if latency else None
    found = claims.findings(trials, timed, sweep_name(latency) if latency else "")
    again = markdown_table(to_markdown(claims.table(found)), claims.FIRST_COLUMN)
    committed = markdown_table((REPORT / "tables" / "findings.md").read_text(), claims.FIRST_COLUMN)
    assert again == committed, "reports/tradeoffs is stale: " + first_difference(again, committed)
