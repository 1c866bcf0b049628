"""Child process of a sweep: `python -m bench.worker TRIAL_DIR` runs the trial in TRIAL_DIR/trial_config.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import config, trial
from bench.cli import summary
from bench.isolation import CONFIG_NAME
from bench.results import record as records


def main(trial_dir: str) -> None:
    folder = Path(trial_dir)
    cfg = config.from_dict(json.loads((folder / CONFIG_NAME).read_text()))
    result = trial.run(cfg, progress=sys.stdout.isatty())
    path = records.write(result, folder)
    print(summary(result, path), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
