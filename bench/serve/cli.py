"""`peft-bench-serve`: the serving scenario's Hydra entry point (conf/serve/config.yaml). Config -> trial -> record.

  peft-bench-serve model=minilm-l6 method=lora     # K = 1, 2, 4, 8, 16, 32: one record each, results/serve/
  peft-bench-serve model=smollm2-135m serve.k=8    # one K
  peft-bench-serve serve/sweep=methods             # a preset under conf/serve/sweep/
  peft-bench-serve --cfg job                       # print the resolved config

Bad input (a key, a value, an adapters folder that is missing or holds another base model's adapters) prints one
line naming the key and exits 2 before any record is written, also mid-sweep (the trials before it keep theirs).
A method that cannot serve as an adapter is recorded `skipped`; any other failure is recorded `failed` and the
sweep goes on: each trial runs in a process of its own (bench.sweep.isolation), so a crash, running out of memory or
running past `trial_timeout` ends that trial only. Finished trials are not run again (matched by config key;
force=true runs them again).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from bench import cli, config
from bench.config import CONF_DIR, ConfigError
from bench.results import record as records
from bench.serve import config as serve_config
from bench.serve.child import NAME

OmegaConf.register_new_resolver("trial_name", cli.trial_name, replace=True)  # conf/config.yaml's folder names
serve_config.register()


def run_job(raw: dict, trial_dir: Path, force: bool, timeout: float | None = None) -> dict:
    """Run one serving trial in a process of its own unless a finished record with its config key is there; its
    record (as a dict). A crash or a timeout in that process is recorded failed; bad input raises ConfigError."""
    cfg = serve_config.from_dict(raw)  # before torch is imported: bad input answers in a second
    from bench.serve import child
    from bench.sweep import resume
    from bench.sweep.isolation import run_isolated

    trial_dir, finished = resume.place(trial_dir, cfg.key(), force)
    if finished is not None:
        print(f"{NAME}: already finished ({finished['status']}), not run again: {trial_dir} (force=true to run it "
              "again)", flush=True)
        return finished
    print(f"{NAME}: running {trial_dir.name}", flush=True)
    # serve_k in a record the child could not write itself, so the report still files it under serving
    result = run_isolated(cfg, trial_dir, timeout, runner=child.run, metrics={"serve_k": cfg.serve.k})
    if result["status"] == records.FAILED and result["error"]["phase"] == "config":
        _forget(trial_dir)  # bad input found once the model was there: no record either
        raise ConfigError(result["error"]["message"])
    return result


def _forget(trial_dir: Path) -> None:
    """Remove what the trial wrote to its folder, and the folder once empty."""
    from bench.sweep.worker import CONFIG_NAME, RUNNER_NAME

    for name in (records.RECORD_NAME, CONFIG_NAME, RUNNER_NAME):
        (trial_dir / name).unlink(missing_ok=True)
    try:
        trial_dir.rmdir()
    except OSError:
        pass  # something else is in it: leave it


@hydra.main(config_path=str(CONF_DIR), config_name=serve_config.CONFIG_NAME, version_base="1.3")
def hydra_main(cfg: DictConfig):
    trial_dir = Path(HydraConfig.get().runtime.output_dir)
    raw = OmegaConf.to_container(cfg, resolve=True)
    options = config.pop_run_options(raw)
    try:
        result = run_job(raw, trial_dir, bool(options["force"]), options["trial_timeout"])
    except ConfigError as error:
        print(f"{NAME}: {error}", file=sys.stderr)
        sys.exit(2)
    return 0.0 if result["status"] == records.FAILED else 1.0


def main() -> None:
    """Bad input on the command line, or in composing it, ends here in one line and exit 2 (as in peft-bench)."""
    cli.run_app(NAME, hydra_main)


if __name__ == "__main__":
    main()
