"""A trial listed as superseded keeps its record but reports no quality: pytest tests/test_superseded.py"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.report.load import SUPERSEDED_NAME, load_trials
from bench.results.consolidate import consolidate
from bench.common.files import write_atomic
from tests.test_unstable import generation_sweep


def test_a_superseded_trials_quality_is_na_with_its_reason(tmp_path):
    folder = generation_sweep(tmp_path / "sweep")
    reason = "generate dropped the trained prefix: the base model's headlines"
    write_atomic(folder / SUPERSEDED_NAME, {"tiny-llama__headline__lora__seed1": reason})
    consolidate(folder)
    trials = load_trials(folder).set_index(["method", "seed"])
    gone = trials.loc[("lora", 1)]
    assert np.isnan(gone["quality"]) and np.isnan(gone["rougeL"]) and gone["quality_items"] is None
    assert gone["quality_na_reason"] == reason
    kept = trials.loc[("lora", 0)]
    assert kept["quality"] > 0 and kept["quality_items"] is not None and pd.isna(kept["quality_na_reason"])
