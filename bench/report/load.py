"""Read a sweep's trials into one clean table: every expected column present, numbers as floats, n/a as NaN.

Accepts a sweep folder (its record.json files are read live, so a sweep still running or killed reports what has
finished so far), a folder holding only trials.csv / trials.parquet, or one of those files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench import config
from bench.common.files import read_json
from bench.results.consolidate import load_table
from bench.results.metrics import METRICS, QUALITY_METRICS

IDENTITY = ["model", "task", "family", "method", "label", "seed"]
CONTEXTS = list(dict.fromkeys(m.context for m in METRICS.values() if m.context))  # quality_metric, mem_source, ...
TEXT_COLUMNS = ["method", "family", "model", "task", "status", *CONTEXTS, "error_type", "error_phase", "error_message",
                "method_params", "trial_dir", "finished_at", "key"]
# the uncertainty of each figure (a 95% interval over items and the item count) and the majority-class share
UNCERTAINTY = ["quality_ci_low", "quality_ci_high", "n_eval", "forgetting_ci_low", "forgetting_ci_high", "n_probe",
               "majority_share"]
NUMERIC_COLUMNS = sorted({*METRICS, *QUALITY_METRICS, *UNCERTAINTY, "seed", "mem_baseline_bytes", "learning_rate",
                          "max_steps"})
ITEMS_NAME = "items.json"  # per-item scores beside record.json: {"quality": [...], "probe_before": [...], ...}
STATUSES = ("ok", "failed", "skipped")
SERVING_COLUMN = "serve_k"  # only peft-bench-serve's records have it; they get a report section of their own


def read_table(source: Path) -> pd.DataFrame:
    source = Path(source)
    if source.is_file():
        return pd.read_parquet(source) if source.suffix == ".parquet" else pd.read_csv(source)
    if not source.is_dir():
        raise FileNotFoundError(f"no sweep folder or trials table at {source}")
    table = load_table(source)
    if table.empty:  # a folder of consolidated tables without the records
        for name in ("trials.parquet", "trials.csv"):
            if (source / name).exists():
                return read_table(source / name)
    return table


def training_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The table without serving records (a `serve_k` value) and without the columns only they fill."""
    if SERVING_COLUMN not in table:
        return table
    serving = table[SERVING_COLUMN].notna()
    theirs = [c for c in table if table.loc[~serving, c].isna().all() and table.loc[serving, c].notna().any()]
    return table[~serving].drop(columns=theirs).reset_index(drop=True)


def normalize(table: pd.DataFrame) -> pd.DataFrame:
    """Missing columns added as NaN, numbers coerced (None -> NaN, never 0), derived columns, variant labels."""
    table = table.copy()
    for column in TEXT_COLUMNS:
        if column not in table:
            table[column] = None
        table[column] = table[column].astype(object).where(table[column].notna(), None)
    for column in NUMERIC_COLUMNS:
        if column not in table:
            table[column] = float("nan")
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    if "can_merge" not in table:
        table["can_merge"] = None
    table["status"] = table["status"].fillna("failed")
    for column in ("method", "family", "model", "task"):
        table[column] = table[column].fillna("?").astype(str)
    # CPU: the RSS baseline holds the weights plus the runtime; this part makes the stacked breakdown add up to
    # the peak.
    # GPU: the allocator baseline is the weights, and activations are already the peak minus weights, grads,
    # optimizer.
    on_cpu = table["mem_source"].eq("process_rss")
    other = (table["mem_baseline_bytes"] - table["mem_weights_bytes"]).clip(lower=0)
    table["mem_other_bytes"] = other.where(on_cpu)
    table["timed_alone"] = timed_alone(table)
    table["learning_rate_chosen_for_model"] = rate_chosen(table)
    keyed = table["key"].notna()  # a config run again (same key): keep its latest record
    table = pd.concat([dedupe(table[keyed], ["key"]), table[~keyed]]).sort_index().reset_index(drop=True)
    table["label"] = variant_labels(table)
    return dedupe(table, ["model", "task", "label", "seed"])


def timed_alone(table: pd.DataFrame) -> pd.Series:
    """True where the trial recorded that nothing else ran beside its timed phases, False where something did,
    None where it did not say (records from before the harness recorded concurrency): speed and latency verdicts
    come only from True. The trial's mfu is read as recorded: a peak it timed under load is n/a there and stays
    n/a here."""
    return yes_no_unknown(table, "timed_alone")


def rate_chosen(table: pd.DataFrame) -> pd.Series:
    """Whether each trial trained at the rate validation chose for its method on its model: as the record says, and
    for a record made before it said so, whether its rate is the one conf/method/ holds as chosen for the model now
    (None where the record has no rate)."""
    recorded = yes_no_unknown(table, "learning_rate_chosen_for_model")
    chosen = {method: config.chosen_rates(method) for method in table["method"].dropna().unique()}

    def now(row) -> bool | None:
        rate, want = row["learning_rate"], chosen.get(row["method"], {}).get(row["model"])
        return None if pd.isna(rate) else want is not None and math.isclose(rate, want, rel_tol=1e-6)

    return pd.Series([value if value is not None else now(row) for value, (_, row) in zip(recorded, table.iterrows())],
                     index=table.index, dtype=object)


def yes_no_unknown(table: pd.DataFrame, column: str) -> pd.Series:
    """A recorded flag as True / False / None (not recorded), whatever csv or parquet made of it."""
    if column not in table:
        return pd.Series(None, index=table.index, dtype=object)
    return table[column].map(lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))
                             else str(v).lower() in ("true", "1", "1.0"))


def _params(row) -> dict:
    try:
        params = json.loads(row["method_params"]) if row["method_params"] else {}
    except (TypeError, ValueError):
        params = {}
    params = {k: json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v for k, v in params.items()}
    return {**params, "lr": row["learning_rate"], "steps": row["max_steps"]}


def variant_labels(table: pd.DataFrame) -> pd.Series:
    """The method name, plus the settings that tell its variants apart where a sweep ran several (`lora (r=16)`)."""
    if table.empty:
        return pd.Series([], dtype=object, index=table.index)
    params = table.apply(_params, axis=1)
    labels = table["method"].copy()
    for method, rows in table.groupby("method").groups.items():
        varying = set()
        for group in table.loc[rows].groupby(["model", "task"]).groups.values():
            values = pd.DataFrame(list(params.loc[group]))
            varying |= {k for k in values if values[k].dropna().astype(str).nunique() > 1}
        if varying:
            for index in rows:
                shown = [f"{k}={_short(params[index].get(k))}" for k in sorted(varying)]
                labels[index] = f"{method} ({', '.join(shown)})"
    # Settings outside method params, learning rate and steps (e.g. train.batch_size=8,16) still tell configs
    # apart by their key: name those variants by the overrides in their trial folder, never average them as seeds
    configs = table.assign(label=labels).groupby(["model", "task", "label", "seed"], dropna=False)["key"]
    clashing = table.loc[configs.transform("nunique") > 1, "method"].unique()
    for index in table.index[table["method"].isin(clashing)]:
        detail = _overrides(table.at[index, 'trial_dir']) or table.at[index, 'key']
        labels[index] = f"{table.at[index, 'method']} ({detail})"
    return labels


def _overrides(trial_dir) -> str | None:
    """The overrides part of a trial folder name: model__task__method__seedN__<overrides> (bench.cli.run.trial_name)."""
    parts = Path(str(trial_dir or "")).name.split("__", 4)
    return parts[4] if len(parts) == 5 else None


def _short(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:g}"
    return str(value)


def dedupe(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """One row per trial: a trial run again keeps its latest record, a finished one before a failed one."""
    if table.empty:
        return table
    rank = table["status"].map({"ok": 0, "skipped": 1}).fillna(2)
    table = table.assign(_rank=rank).sort_values(["_rank", "finished_at"], ascending=[True, False], na_position="last")
    table = table.drop_duplicates(by, keep="first").drop(columns="_rank")
    return table.sort_index().reset_index(drop=True)


def _items_file(trial_dir, source: Path) -> Path | None:
    """items.json of a trial: in its folder as recorded, or in a folder of that name beside the table (a sweep
    folder moved or read from elsewhere)."""
    if not trial_dir:
        return None
    folder = source if source.is_dir() else source.parent
    for candidate in (Path(trial_dir), folder / Path(trial_dir).name):
        if (candidate / ITEMS_NAME).is_file():
            return candidate / ITEMS_NAME
    return None


def attach_items(table: pd.DataFrame, source: Path) -> pd.DataFrame:
    """`quality_items`: the trial's per-item quality scores (a float array) where its folder has them, else None.
    A plain list in the file is read as the quality scores. `curve`: the trial's checkpoints along training (a list
    of dicts, `train.eval_every`) where it recorded them, else None. `probe_items`: the forgetting probe's
    per-item scores (_probe_items), else None."""
    items, curves, probes = [], [], []
    for trial_dir, status in zip(table["trial_dir"], table["status"]):
        path = _items_file(trial_dir, Path(source)) if status == "ok" else None
        payload = read_json(path) if path else None
        scores = payload.get("quality") if isinstance(payload, dict) else payload
        items.append(np.asarray(scores, dtype=float) if isinstance(scores, list) and scores else None)
        curve = payload.get("curve") if isinstance(payload, dict) else None
        curves.append(curve if isinstance(curve, list) and curve else None)
        probes.append(_probe_items(payload))
    return table.assign(quality_items=pd.Series(items, index=table.index, dtype=object),
                        curve=pd.Series(curves, index=table.index, dtype=object),
                        probe_items=pd.Series(probes, index=table.index, dtype=object))


def _probe_items(payload) -> dict | None:
    """{"before", "after", "weights"}: the forgetting probe's per-item scores on the base and the tuned model."""
    if not isinstance(payload, dict) or not payload.get("probe_before") or not payload.get("probe_after"):
        return None
    return {"before": payload["probe_before"], "after": payload["probe_after"],
            "weights": payload.get("probe_weights")}


BASELINES_NAME = "baselines.json"  # a generation task's trivial baseline, written by python -m bench.results.baselines
MAJORITY = "majority-class"


def attach_baselines(table: pd.DataFrame, source: Path) -> pd.DataFrame:
    """`baseline_score` and `baseline_kind`: each trial's trivial baseline, the floor a trained method must be shown
    above: the majority-class share a classification trial recorded, or the lead of a generation task from the
    sweep's baselines.json; NaN / None where neither exists."""
    source = Path(source)
    folder = source if source.is_dir() else source.parent
    found = read_json(folder / BASELINES_NAME) if (folder / BASELINES_NAME).is_file() else None
    found = found if isinstance(found, dict) else {}
    score = table["majority_share"].copy()
    kind = pd.Series(np.where(score.notna(), MAJORITY, None), index=table.index, dtype=object)
    for task, entry in found.items():
        rows = table["task"].eq(task) & score.isna()
        if isinstance(entry, dict) and entry.get("score") is not None:
            score[rows], kind[rows] = float(entry["score"]), str(entry.get("kind") or "trivial baseline")
    return table.assign(baseline_score=score, baseline_kind=kind)


SUPERSEDED_NAME = "superseded.json"  # {trial folder name: why its quality no longer stands}
QUALITY_COLUMNS = ("quality", "quality_ci_low", "quality_ci_high", "rouge1", "rouge2", "rougeL", "accuracy", "f1_macro")


def drop_superseded_quality(table: pd.DataFrame, source: Path) -> pd.DataFrame:
    """Trials the sweep's superseded.json lists keep their records as measured, but their quality is n/a, with the
    reason in `quality_na_reason` (e.g. generations found later not to be the trained model's: no figure of the base
    model is reported under a method's name)."""
    folder = source if source.is_dir() else source.parent
    found = read_json(folder / SUPERSEDED_NAME) if (folder / SUPERSEDED_NAME).is_file() else None
    listed = table["trial_dir"].map(lambda d: (found or {}).get(Path(str(d)).name) if d else None)
    recorded = table.get("quality_na_reason", pd.Series(None, index=table.index, dtype=object))
    hit = listed.notna() & recorded.isna()  # a trial that recorded its own reason has no quality to drop
    table = table.assign(quality_na_reason=recorded.where(~hit, listed).astype(object))
    columns = [c for c in QUALITY_COLUMNS if c in table]
    table.loc[hit, columns] = np.nan
    table["quality_items"] = [None if h else items for h, items in zip(hit, table["quality_items"])]
    return table


def load_trials(source: Path, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The training trials of a sweep folder or table file (`table`: its rows, where already read)."""
    table = read_table(source) if table is None else table
    trials = attach_items(normalize(training_rows(table)), Path(source))
    trials = attach_baselines(drop_superseded_quality(trials, Path(source)), Path(source))
    return trials.copy()  # one block per dtype: normalize adds columns one at a time
