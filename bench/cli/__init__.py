"""The command-line faces, above everything they run (pyproject.toml's console scripts):

run.py      peft-bench          one trial, or a sweep (Hydra multirun)
serve.py    peft-bench-serve    the serving scenario
report.py   peft-bench-report   a sweep's trials -> tables, plots, one HTML page
methods.py  peft-bench-methods  every method: family, merges, trainable fraction
errors.py   their answers to bad input: one line naming the key and the value, exit 2

`python -m bench.cli ...` and the console script bench.cli:main are peft-bench.
"""

from bench.cli.run import main  # noqa: E402 - peft-bench's console script is bench.cli:main

__all__ = ["main"]
