"""Scoring ROUGE leaves the logging configuration alone: pytest tests/test_metrics_logging.py"""

from __future__ import annotations

import logging
import subprocess
import sys


def test_scoring_rouge_adds_no_handler_to_the_root_logger():
    """absl's first log call runs logging.basicConfig(): a root handler bound to the sys.stderr of that moment (under
    pytest, a capture file closed after the test, which broke every later log call)."""
    code = ("import logging; from bench.tasks.metrics import rouge_items; "
            "rouge_items(['acme shares rise'], ['acme shares rise on sales']); print(len(logging.root.handlers))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "0", done.stdout + done.stderr
    assert logging.getLogger().handlers == logging.root.handlers  # (this process is left as it was)
