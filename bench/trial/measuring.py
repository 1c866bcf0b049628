"""What a trial measures on its trained model (a distributed trial: once, on rank 0, on the gathered model):
quality on the held-out split, the checkpoint, the merge and its check, latency unmerged and merged, forgetting."""

from __future__ import annotations

from pathlib import Path

from bench import tasks
from bench.config import ConfigError, TrialConfig
from bench.probes import BodyNotCalled, forgetting
from bench.tasks import generation
from bench.trackers import decode, latency, merge, storage
from bench.trial.load import Setup, autocast, compute_dtype
from bench.trial.phases import Phases
from bench.trial.result import Measured


def measure(cfg: TrialConfig, ready: Setup, model, phases: Phases, trial_dir: Path | None = None,
            probed=None) -> Measured:
    """Quality, checkpoint, merge, latency, forgetting of `model` (ready's, trained). `probed`: the probe's score of
    these weights already taken (the learning curve's last checkpoint), used in place of scoring them again."""
    found = Measured()
    with phases("evaluate"), autocast(cfg, ready.device):
        found.add(evaluate(cfg, ready, model))
    with phases("storage"):
        found.add(keep_checkpoint(cfg, ready, model, trial_dir))
    batch = latency_batch(ready.data, ready.tokenizer, cfg, ready.device)
    merged = None
    if ready.method.merges:
        with phases("merge"):
            merged, checked = merge_checked(cfg, model, batch, ready.device)
        found.add(checked)
    with phases("latency"), autocast(cfg, ready.device):
        found.add(time_inference(cfg, ready, {"": model} if merged is None else {"": model, "_merged": merged}, batch))
    if ready.probe is not None:
        with phases("probe"):  # on the method as it serves: merged where the merge passed its check
            found.add(probe_forgetting(ready.probe, ready.base_probe, model if merged is None else merged, probed))
    return found


def evaluate(cfg: TrialConfig, ready: Setup, model) -> Measured:
    """The task's metrics on the test split, each item's score (and generated text) beside them."""
    quality = tasks.evaluate(ready.data, model, ready.tokenizer, ready.model_kind, cfg.train.eval_batch_size,
                             cfg.train.max_length, ready.device)
    items = {"quality": quality.pop("items")}
    if "generated" in quality:  # each item's generated text beside its score, so a generation score is auditable
        items["generated"] = quality.pop("generated")
    figures = {**quality, "quality_metric": cfg.task.primary_metric, "quality": quality[cfg.task.primary_metric]}
    return Measured(figures, items)


def keep_checkpoint(cfg: TrialConfig, ready: Setup, model, trial_dir: Path | None) -> dict:
    """The bytes a method stores per task; with train.save_checkpoint, the adapter that serving loads, kept."""
    if cfg.train.save_checkpoint:  # what is kept is the adapter that serving loads, never the merged model
        if trial_dir is None:
            raise ConfigError("`train.save_checkpoint` (true): this run gave the trial no folder to keep it in")
        storage.save(model, Path(trial_dir) / "checkpoint")
    return {"checkpoint_bytes": storage.checkpoint_bytes(model), "can_merge": ready.method.merges}


def merge_checked(cfg: TrialConfig, model, batch: dict, device):
    """(a merged copy of the model, its check's figures), the copy None where the merge raised or its check failed
    (never failing the trial): the merged figures are then n/a, with the reason in `merge_error`."""
    merged, check = merge.merge_checked(model, batch, compute_dtype(cfg, device), lambda: autocast(cfg, device))
    if check.get("merge_ok") is not True:
        return None, {**check, "latency_ms_p50_merged": None, "latency_ms_p90_merged": None}
    return merged, check


def time_inference(cfg: TrialConfig, ready: Setup, timed: dict, batch: dict) -> dict:
    """Latency of each model in `timed` ({"": unmerged, "_merged": merged}), their repeats interleaved so load from
    outside falls on both alike; a decoder that generates also pays per decoded token."""
    train, device = cfg.train, ready.device
    figures = latency.measure_interleaved(timed, batch, train.latency_repeats, train.latency_warmup, device)
    if cfg.task.kind == "generation" and ready.model_kind == "decoder":
        request = generation.timing_batch(ready.data, ready.tokenizer, train.max_length, decode.DECODE_NEW_TOKENS,
                                          device)
        figures.update(decode.measure_interleaved(generation.timing_decoder(ready.tokenizer), timed, request,
                                                  train.latency_repeats, train.latency_warmup, device))
    return figures


def probe_forgetting(probe, base_probe: dict, model, probed=None) -> Measured:
    """The probe on the tuned model, as it serves; forgetting against the base with its interval, and both sides'
    per-item scores (the same items, so methods compare paired). `probed`: the same weights' score, taken at the
    learning curve's last step on the unmerged model, which a passed merge check holds equal to the merged one
    within float tolerance: used as it is (`probe_from_curve`), since scoring again costs a whole probe pass."""
    try:
        after = probed if probed is not None else probe.measure(model)
    except BodyNotCalled as error:  # the probe cannot see this model as it serves: n/a, never a made-up 0
        return Measured({"probe_after": None, "forgetting_probe": probe.name, "forgetting": None,
                         "probe_error": str(error)})
    found = Measured(items={"probe_after": after.items})
    if base_probe.get("score") is None:
        found.figures = {"probe_after": after.value, "forgetting_probe": probe.name, "forgetting": None,
                         "n_probe": len(after.items)}
    else:
        found.figures = forgetting.metrics(probe, base_probe, after)
        found.items = {"probe_before": base_probe.get("items") or [], **found.items}
    if after.weights:
        found.items["probe_weights"] = after.weights
    if probed is not None:
        found.figures["probe_from_curve"] = True
    return found


def latency_batch(data, tokenizer, cfg: TrialConfig, device) -> dict:
    """One fixed-size batch: the first held-out texts, padded to train.max_length."""
    texts = [r["text"] for r in data.test_rows[: cfg.train.latency_batch_size]]
    texts += texts[:1] * (cfg.train.latency_batch_size - len(texts))
    batch = tokenizer(texts, truncation=True, max_length=cfg.train.max_length, padding="max_length",
                      return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}
