"""The child process that fills the shared caches (peak FLOP/s, the base model's probe score) for
bench.launch.shared; it loads the base model through the trial's own functions, so its numbers match a trial's.

    python -m bench.launch.shared_child TRIAL_CONFIG_JSON     (what fill_shared_caches runs when a cache is cold)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from bench import ConfigError, config, trial
from bench.launch.shared import BAD_INPUT_EXIT, trial_dtype, trial_threads
from bench.probes import base
from bench.trackers import peak_flops
from bench.trial.progress import quiet_libraries


def main(path: str) -> None:
    job = json.loads(Path(path).read_text())
    cfg = config.from_dict(job["config"])
    quiet_libraries(cfg.verbose)
    if job["cold"].get("peak"):
        kept = peak_flops.measure_and_keep(Path(cfg.cache_dir).expanduser(), trial_threads(cfg), dtype=trial_dtype(cfg))
        print(f"peft-bench: peak {trial_dtype(cfg)} FLOP/s of this machine at {kept['threads']} threads: "
              f"{kept['flops_per_s']:.3g}"
              + (" (timed under load: the machine did not become idle)" if kept["under_load"] else ""), flush=True)
    if job["cold"].get("probe"):
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        kept = base.fill(cfg, trial.load_base, trial.make_probe, locked=job["cold"].get("probe_locked", False))
        if kept:
            print(f"peft-bench: base {cfg.model.name} probe score {kept['score']:.4g} ({len(kept['items'])} items, "
                  f"{kept['seconds']:.1f} s), kept for every trial", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except ConfigError:
        sys.exit(BAD_INPUT_EXIT)
