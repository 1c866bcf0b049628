"""`peft-bench`: the Hydra entry point. Config -> typed dataclasses -> trial -> record.

  peft-bench                                   # one trial: minilm-l6, bbc-topic, lora
  peft-bench method=full model=smollm2-135m    # any group option from conf/
  peft-bench -m 'method=glob(*)' train.max_steps=5
  peft-bench sweep=quick                       # a named preset under conf/sweep/ (README.md, Sweeps)
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from bench import config
from bench.config import ConfigError, closest

PACKAGE_CONF = Path(__file__).parent / "conf"  # inside an installed wheel
CONF_DIR = PACKAGE_CONF if PACKAGE_CONF.is_dir() else Path(__file__).parent.parent / "conf"  # a source checkout
GROUPS = ("model", "task", "method", "train", "sweep")


MAX_OVERRIDES_IN_NAME = 120  # a folder name must stay under 255 bytes; longer override lists end in a hash


def trial_name(model: str, task: str, method: str, seed, overrides: str) -> str:
    """Folder name of a trial: readable identity, plus any other overrides that shaped it.

    Long override lists are cut and end in `~` and a hash of the whole list, so names stay unique and legal;
    resume matches records by config key anyway (bench/sweep/resume.py).
    """
    safe = lambda text: str(text).replace("/", "_")  # a Hub id or path must not nest folders
    name = "__".join(safe(part) for part in (model, task, method, f"seed{seed}"))
    if not overrides:
        return name
    text = safe(re.sub(r"(^|,)\+{1,2}", r"\1", overrides))  # `+key=`/`++key=` name the same value as `key=`
    if len(text) > MAX_OVERRIDES_IN_NAME:
        text = text[: MAX_OVERRIDES_IN_NAME - 9] + "~" + hashlib.sha256(overrides.encode()).hexdigest()[:8]
    return f"{name}__{text}"


OmegaConf.register_new_resolver("trial_name", trial_name, replace=True)
config.register_schemas()


def _config_dirs(argv: list[str]) -> list[Path]:
    dirs = [CONF_DIR]
    for flag, value in zip(argv, argv[1:] + [""]):
        if flag in ("--config-dir", "-cd"):
            dirs.append(Path(value))
        elif flag.startswith("--config-dir="):
            dirs.append(Path(flag.split("=", 1)[1]))
    return dirs


def check_group_choices(argv: list[str]) -> None:
    """Unknown `method=`/`model=`/... names fail with one line naming the closest valid ones (not Hydra's page)."""
    dirs = _config_dirs(argv)
    for arg in argv:
        match = re.fullmatch(r"\+?(model|task|method|train|sweep|setting)=(.+)", arg)
        if not match or match.group(2).startswith(("glob(", "range(")):
            continue
        group, value = match.groups()
        inner = re.fullmatch(r"choice\((.*)\)", value)
        values = (inner.group(1) if inner else value).split(",")
        available = {p.stem for d in dirs for p in (d / group).glob("*.yaml")}
        for name in (v.strip().strip("'\"") for v in values):
            if name not in available:
                raise ConfigError(f"`{group}` ({name!r}) is not in conf/{group}/{closest(name, available)}")


# Options that need a Hydra plugin from an extra: checked before Hydra starts, for one clear line.
PLUGINS = {
    "sweep=lora-rank-optuna": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper", "search"),
    "hydra/launcher=slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "cluster"),
    "hydra/launcher=submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "cluster"),
    "hydra/launcher=ray-cluster": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
    "hydra/launcher=ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
    "hydra/sweeper=optuna": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper", "search"),
}


def check_plugins(argv: list[str]) -> None:
    if any(arg in ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help") for arg in argv):
        return  # printing a config needs no plugin
    for arg in argv:
        if arg in PLUGINS and importlib.util.find_spec(PLUGINS[arg][0]) is None:
            _, dist, extra = PLUGINS[arg]
            raise ConfigError(f"`{arg}` needs the Hydra plugin {dist}, which is not installed: "
                              f"pip install -e '.[{extra}]' (or pip install {dist})")


def summary(record, path: Path | None) -> str:
    """One screen: what ran, and the figures it measured."""
    m, ident = record.metrics, record.identity
    lines = [f"peft-bench: {ident['method']} ({ident['family']}) on {ident['model']} / {ident['task']}, seed {ident['seed']}: "
             f"{record.status.upper()}"]
    if record.error:
        lines.append(f"  {record.error['phase']}: {record.error['type']}: {record.error['message']}")

    def row(label, key, fmt):
        value = m.get(key)
        lines.append(f"  {label:<26}{'n/a' if value is None else fmt(value)}")

    mib = lambda v: f"{v / 2**20:,.1f} MiB"
    row("trainable params", "trainable_params", lambda v: f"{v:,} of {m['total_params']:,} ({m['trainable_fraction']:.3%})")
    row("peak memory (train)", "peak_mem_bytes", lambda v: f"{mib(v)} [{m.get('mem_source')}]")
    row("  weights/grads/optimizer", "mem_weights_bytes",
        lambda v: f"{mib(v)} / {mib(m['mem_grads_bytes'])} / {mib(m['mem_optimizer_bytes'])}")
    row("  activations", "mem_activations_bytes", mib)
    row("throughput", "train_tokens_per_s", lambda v: f"{v:,.0f} tokens/s, {m['train_samples_per_s']:.1f} samples/s")
    row("training FLOPs", "train_flops", lambda v: f"{v:.3g}")
    row("loss first -> last", "final_loss", lambda v: f"{m.get('first_loss') or float('nan'):.4f} -> {v:.4f}")
    row(f"quality ({m.get('quality_metric', '')})", "quality", lambda v: f"{v:.4f}")
    row("latency p50 / p90", "latency_ms_p50", lambda v: f"{v:.2f} / {m['latency_ms_p90']:.2f} ms")
    row("latency p50 merged", "latency_ms_p50_merged", lambda v: f"{v:.2f} ms")
    row("checkpoint per task", "checkpoint_bytes", mib)
    row(f"forgetting ({m.get('forgetting_probe', '')})", "forgetting",
        lambda v: f"{v:+.4f} (before {m['probe_before']:.4g}, after {m['probe_after']:.4g})")
    if path:
        lines.append(f"  record: {path}")
    return "\n".join(lines)


def run_job(raw: dict, trial_dir: Path, force: bool, isolated: bool, timeout: float | None = None):
    """Run one trial unless a finished record with the same config exists; write its record.

    isolated (multirun): the trial runs in its own process and every failure, a bad config included, becomes a
    failed record; single run: in this process, and a bad config raises ConfigError (one line, no record).
    """
    from bench import trial
    from bench.results import record as records
    from bench.sweep import resume

    if isolated:
        from bench.isolation import prepare

        prepare()  # before anything of the trial's own (a config failure record imports torch): fork or not
    try:
        cfg = config.from_dict(raw)
    except ConfigError as error:
        if not isolated:
            raise
        from bench.isolation import record_config_failure

        return record_config_failure(raw, error, trial_dir)
    trial_dir, finished = resume.place(trial_dir, cfg.key(), force)
    if finished is not None:
        print(f"peft-bench: already finished ({finished['status']}), not run again: {trial_dir} "
              "(force=true to run it again)", flush=True)
        return finished
    if isolated:
        from bench.isolation import run_isolated

        print(f"peft-bench: running {trial_dir.name}", flush=True)
        return run_isolated(cfg, trial_dir, timeout)
    result = trial.run(cfg, progress=sys.stdout.isatty() or not isolated)
    if result.status != "ok" and result.error["phase"] == "config":
        raise ConfigError(result.error["message"])  # bad input on a single run: one line, no record
    path = records.write(result, trial_dir)
    print(summary(result, path), flush=True)
    return result


FAILED_OBJECTIVE = 0.0  # quality metrics lie in [0, 1]: a failed trial counts as the worst (Optuna 2 rejects NaN)


def objective(result) -> float:
    """What a multirun job returns, for sweepers that search (Optuna maximises it): the trial's held-out quality."""
    record = result if isinstance(result, dict) else getattr(result, "to_dict", lambda: {})()
    quality = (record.get("metrics") or {}).get("quality") if record.get("status") == "ok" else None
    return float(quality) if isinstance(quality, (int, float)) and math.isfinite(quality) else FAILED_OBJECTIVE


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig):
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    trial_dir = Path(hydra_cfg.runtime.output_dir)
    raw = OmegaConf.to_container(cfg, resolve=True)
    force = bool(raw.pop("force", False))
    timeout = raw.pop("trial_timeout", None)
    raw.pop("results_dir", None)
    if not multirun:
        try:
            result = run_job(raw, trial_dir, force, isolated=False)
        except ConfigError as error:
            print(f"peft-bench: {error}", file=sys.stderr)
            sys.exit(2)
        if getattr(result, "status", "ok") == "failed":
            sys.exit(1)
        return None
    try:
        result = run_job(raw, trial_dir, force, isolated=True, timeout=timeout)
    except Exception as error:  # a sweep never dies for one trial; record what the parent hit and go on
        import traceback

        traceback.print_exc()
        from bench.isolation import record_config_failure

        try:
            result = record_config_failure(raw, error, trial_dir, phase="sweep")
        except Exception:  # noqa: BLE001 - even the record could not be written (disk full?): say so, go on
            traceback.print_exc()
            return FAILED_OBJECTIVE
    return objective(result)


def main() -> None:
    try:
        check_group_choices(sys.argv[1:])
        check_plugins(sys.argv[1:])
    except ConfigError as error:
        print(f"peft-bench: {error}", file=sys.stderr)
        sys.exit(2)
    from bench.worker import SWEEP_ENV, process_identity

    os.environ[SWEEP_ENV] = process_identity()  # trials end with this process, launcher processes between or not
    hydra_main()


if __name__ == "__main__":
    main()
