"""A tiny trial's record keeps its keys and its non-timing values: tests/fixtures/tiny_trial_record.json was written
by the trial before it was split into a package, and every restructuring since is held against it.

pytest tests/test_record_unchanged.py
python -m tests.test_record_unchanged      (writes the expectation again: only for a change of values that is meant)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from bench.launch.trial import run_trial
from tests.conftest import trial_config

EXPECTED = Path(__file__).parent / "fixtures" / "tiny_trial_record.json"
# one thread: the loss is the same run to run; LoRA's rate when the expectation was written, whatever its YAML says now;
# the default cache folder, whatever PEFT_BENCH_CACHE says (the config records it, and the checkpoint's bytes hold it)
CONFIG = ("model=tiny-bert", "method=lora", "method.learning_rate=0.009", "train.threads=1",
          "cache_dir='~/.cache/peft-bench'")
# Figures of the machine and the moment: timings, speeds, load, energy, measured memory, the machine's peak FLOP/s.
VOLATILE = re.compile(r"^(seconds_|load_avg_|cpu_share_others_|latency_ms_|energy_joules|peak_flops|peak_mem|"
                      r"train_seconds|startup_seconds|mfu$|timed_alone$|train_tokens_per_joule$)|_per_s$|"
                      r"^mem_(baseline|other|transient|activations)_bytes$")
ONLY_WHEN_COLD = {"seconds_prepare"}  # present only when the shared caches had to be filled first
# Added since the expectation was written, each by a tracker module and a catalogue row (bench.trackers.protocol)
ADDED = {"final_grad_norm"}
# config fields added since, with the value this trial must record (its rate is set by hand: chosen on no model)
ADDED_CONFIG = {"learning_rate_chosen_for_model": False}


def observed() -> dict:
    """What the trial records that does not vary between runs on one machine."""
    record = run_trial(trial_config(*CONFIG), progress=False)
    values = record.to_dict()
    metrics = values.pop("metrics")
    for varying in ("provenance", "finished_at"):
        values.pop(varying)
    return {
        "record": values,
        "metric_keys": sorted(set(metrics) - ONLY_WHEN_COLD),
        "metrics": {key: value for key, value in metrics.items() if not VOLATILE.search(key)
                    and key not in ONLY_WHEN_COLD},
        "items": record.items,
    }


def test_a_tiny_trial_records_the_same_keys_and_values_as_before():
    expected, found = json.loads(EXPECTED.read_text()), json.loads(json.dumps(observed()))
    added = {key: found["record"]["config"].pop(key, "missing") for key in ADDED_CONFIG}
    assert added == ADDED_CONFIG
    assert found["record"] == expected["record"]
    assert sorted(set(found["metric_keys"]) - ADDED) == expected["metric_keys"]
    assert ADDED <= set(found["metric_keys"]) and found["metrics"]["final_grad_norm"] > 0
    numbers = {key for key, value in expected["metrics"].items() if isinstance(value, float)}
    assert {key: found["metrics"].get(key) for key in numbers} == pytest.approx(
        {key: expected["metrics"][key] for key in numbers}, rel=1e-5)
    assert {key: found["metrics"].get(key) for key in expected["metrics"].keys() - numbers} == {
        key: expected["metrics"][key] for key in expected["metrics"].keys() - numbers}
    assert found["items"] == expected["items"]


def test_the_comparison_leaves_out_timings_but_not_results():
    assert VOLATILE.search("seconds_train") and VOLATILE.search("train_tokens_per_s")
    assert not any(VOLATILE.search(key) for key in ("quality", "final_loss", "trainable_params", "mem_weights_bytes"))


if __name__ == "__main__":
    EXPECTED.parent.mkdir(exist_ok=True)
    EXPECTED.write_text(json.dumps(observed(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {EXPECTED}", file=sys.stderr)
