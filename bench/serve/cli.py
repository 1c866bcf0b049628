"""`peft-bench-serve`: the serving scenario's Hydra entry point (conf/serve/config.yaml). Config -> trial -> record.

  peft-bench-serve model=minilm-l6 method=lora     # K = 1, 2, 4, 8, 16, 32: one record each, results/serve/
  peft-bench-serve model=smollm2-135m serve.k=8    # one K
  peft-bench-serve serve/sweep=methods             # a preset under conf/serve/sweep/
  peft-bench-serve --cfg job                       # print the resolved config

Bad input (a key, a value, an adapters folder that is missing or holds another base model's adapters) prints one
line naming the key and exits 2 before any record is written, also mid-sweep (the trials before it keep theirs).
A method that cannot serve as an adapter is recorded `skipped`; any other failure is recorded `failed` and the
sweep goes on. Finished trials are not run again (matched by config key; force=true runs them again).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from bench import cli, config
from bench.config import CONF_DIR, ConfigError, check_group_choices
from bench.results import record as records
from bench.serve import config as serve_config

NAME = "peft-bench-serve"
OmegaConf.register_new_resolver("trial_name", cli.trial_name, replace=True)  # conf/config.yaml's folder names
serve_config.register()


def run_job(raw: dict, trial_dir: Path, force: bool):
    """Run one serving trial unless a finished record with its config key is there; write its record."""
    cfg = serve_config.from_dict(raw)  # before torch is imported: bad input answers in a second
    from bench.serve import scenario
    from bench.sweep import resume

    trial_dir, finished = resume.place(trial_dir, cfg.key(), force)
    if finished is not None:
        print(f"{NAME}: already finished ({finished['status']}), not run again: {trial_dir} (force=true to run it "
              "again)", flush=True)
        return finished
    print(f"{NAME}: running {trial_dir.name}", flush=True)
    result = scenario.run(cfg)
    if result.status == records.FAILED and result.error["phase"] == "config":
        raise ConfigError(result.error["message"])  # bad input found once the model was there: no record either
    path = records.write(result, trial_dir)
    print(summary(result.to_dict(), path), flush=True)
    return result


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _mib(value) -> str:
    return "n/a" if value is None else f"{value / 2**20:.2f} MiB"


def summary(record: dict, path: Path | None = None) -> str:
    """What ran, its status, and the headline figures (the record holds them all)."""
    who, m = record["identity"], record["metrics"]
    lines = [f"{NAME}: {who['method']} on {who['model']}, K={m.get('serve_k')}: {record['status'].upper()}"]
    if record.get("error"):
        lines.append(f"  {record['error']['phase']}: {record['error']['type']}: {record['error']['message']}")
    if record["status"] == records.OK:
        lines += [
            f"  load {m['load_s_p50'] * 1000:.1f} ms per adapter; {_mib(m['mem_per_adapter_bytes'])} resident per "
            f"adapter ({m['mem_source']}); {_mib(m['adapter_disk_bytes'])} on disk",
            f"  swap: set {_ms(m['swap_set_ms_p50'])}, hot-swap {_ms(m['swap_hotswap_ms_p50'])}, merge "
            f"{_ms(m['swap_merge_ms_p50'])}",
            "  round-robin p50 per request: " + ", ".join(
                f"{mode} {_ms(m.get(f'{mode}_round_robin_ms_p50'))}" for mode in ("mixed", "single", "merged"))
            + f", base {_ms(m['base_ms_p50'])}",
            f"  {m['serve_k']} full copies: {_mib(m.get('copies_mem_bytes'))} ({m.get('copies_source')})",
        ]
    if path:
        lines.append(f"  record: {path}")
    return "\n".join(lines)


@hydra.main(config_path=str(CONF_DIR), config_name=serve_config.CONFIG_NAME, version_base="1.3")
def hydra_main(cfg: DictConfig):
    trial_dir = Path(HydraConfig.get().runtime.output_dir)
    raw = OmegaConf.to_container(cfg, resolve=True)
    options = config.pop_run_options(raw)
    try:
        result = run_job(raw, trial_dir, bool(options["force"]))
    except ConfigError as error:
        print(f"{NAME}: {error}", file=sys.stderr)
        sys.exit(2)
    status = result["status"] if isinstance(result, dict) else result.status
    return 0.0 if status == records.FAILED else 1.0


def main() -> None:
    """Bad input on the command line, or in composing it, ends here in one line and exit 2."""
    def run() -> None:
        check_group_choices(sys.argv[1:])
        hydra_main()

    config.exit_on_bad_input(NAME, run)


if __name__ == "__main__":
    main()
