"""Reports from a sweep's trials: tables (Markdown, CSV, LaTeX), seaborn plots, a recommendation, report.html.

`peft-bench-report results/<sweep>` (cli.py) -> reports/<sweep>/; build.build_report is the same from Python.
Files: load (trials table), metrics (labels, units, directions), aggregate (mean ± std over seeds, best marks),
pareto, tables + render (md/html/tex), plots/ (one module per plot family), recommend (budgets), page (md + html).
"""
