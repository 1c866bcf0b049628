"""The trivial baseline of a generation task (the lead sentence as the headline): pytest tests/test_baselines.py"""

from __future__ import annotations

import json

from bench.config import TaskConfig
from bench.results import baselines
from bench.tasks import SPLIT_VERSION


def test_the_lead_is_the_first_sentence_of_the_first_paragraph():
    text = "Shares in Acme rose 5% on Monday. Analysts were surprised.\n\nThe company said..."
    assert baselines.lead_sentence(text) == "Shares in Acme rose 5% on Monday."


def test_the_lead_is_scored_with_the_task_metric_per_item():
    cfg = TaskConfig(name="headline", kind="generation", primary_metric="rougeL", metrics=["rougeL"])
    rows = [{"text": "Acme shares rise on strong sales. More follows.", "label": "Acme shares rise"},
            {"text": "Rain falls in Wales all week.", "label": "Election called"}]
    result = baselines.lead_baseline(cfg, rows)
    assert result["n"] == 2 and result["items"][1] == 0.0 and 0.5 < result["items"][0] < 1.0
    assert abs(result["score"] - sum(result["items"]) / 2) < 1e-4 and result["kind"] == "lead-sentence"


def test_a_baseline_scored_on_another_split_version_is_kept(tmp_path, capsys):
    (tmp_path / baselines.FILE_NAME).write_text(json.dumps({"headline": {"score": 0.18,
                                                                         "split_version": SPLIT_VERSION - 1}}))
    assert baselines.main([str(tmp_path)]) == 2
    assert "split version" in capsys.readouterr().err
    assert json.loads((tmp_path / baselines.FILE_NAME).read_text())["headline"]["score"] == 0.18
