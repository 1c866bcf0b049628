"""`python -m bench.cli ...`: peft-bench (a Ray or SLURM sweep runs it from another environment's Python)."""

from bench.cli.run import main

main()
