"""`peft-bench-serve`: the serving scenario's Hydra entry point (conf/serve/config.yaml). Config -> trial -> record.

  peft-bench-serve model=minilm-l6 method=lora     # K = 1, 2, 4, 8, 16, 32: one record each, results/serve/
  peft-bench-serve model=smollm2-135m serve.k=8    # one K
  peft-bench-serve serve/sweep=methods             # a preset under conf/serve/sweep/
  peft-bench-serve --cfg job                       # print the resolved config

Bad input (a key, a value, an adapters folder that is missing or holds another base model's adapters) prints one
line naming the key and exits 2 before any record is written, also mid-sweep (the trials before it keep theirs).
A method that cannot serve as an adapter is recorded `skipped`; any other failure is recorded `failed` and the
sweep goes on: each trial runs in a process of its own (bench.launch.isolation), so a crash, running out of memory or
running past `trial_timeout` ends that trial only. Finished trials are not run again (matched by config key;
force=true runs them again).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from bench import config
from bench.cli import errors
from bench.cli.run import trial_name
from bench.config import CONF_DIR, ConfigError
from bench.launch import job
from bench.results import record as records
from bench.serve import child
from bench.serve import config as serve_config
from bench.serve.child import NAME

OmegaConf.register_new_resolver("trial_name", trial_name, replace=True)  # conf/config.yaml's folder names
serve_config.register()
# a serving trial always runs in a child process of its own, and bad input stops even a sweep (no record)
SERVING = job.Kind(NAME, serve_config.from_dict, child.run, bad_input_stops=True, shared_work=False,
                   failed_figures=lambda cfg: {"serve_k": cfg.serve.k})  # the report files it under serving


def run_job(raw: dict, trial_dir: Path, force: bool, timeout: float | None = None) -> dict:
    """Run one serving trial in a process of its own unless a finished record with its config key is there; its
    record (as a dict). A crash or a timeout in that process is recorded failed; bad input raises ConfigError."""
    return job.run_job(SERVING, raw, trial_dir, force, isolated=True, timeout=timeout)


@hydra.main(config_path=str(CONF_DIR), config_name=serve_config.CONFIG_NAME, version_base="1.3")
def hydra_main(cfg: DictConfig):
    trial_dir = Path(HydraConfig.get().runtime.output_dir)
    raw = OmegaConf.to_container(cfg, resolve=True)
    options = config.pop_run_options(raw)
    try:
        result = run_job(raw, trial_dir, bool(options["force"]), options["trial_timeout"])
    except ConfigError as error:
        errors.stop(error, NAME)
    return 0.0 if result["status"] == records.FAILED else 1.0


def main() -> None:
    """Bad input on the command line, or in composing it, ends here in one line and exit 2 (as in peft-bench)."""
    errors.run_app(NAME, hydra_main)


if __name__ == "__main__":
    main()
