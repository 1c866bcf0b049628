"""Report tests on a synthetic trials table with known values (no training): pytest tests/test_report.py

The table: 2 models × 2 tasks × 5 method variants × 3 seeds, where seed s shifts every metric by (s - 1) * step so
that the mean is the base value and the sample std is exactly `step`; plus failed and skipped trials.
"""

from __future__ import annotations

import itertools
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report.aggregate import aggregate, best_marks
from bench.report.build import build_report
from bench.cli.report import main as report_main
from bench.report.load import load_trials, normalize
from bench.report.pareto import pareto_mask
from bench.report.recommend import Budget, parse_size, recommend, summary
from bench.report.render import latex_escape, to_latex
from bench.report.tables import cost_table, paper_table, storage_frame

ODD = "lora_r8&x%"  # a name LaTeX would choke on unescaped
MODELS = {"tiny-a": 1_000_000, "tiny-b": 4_000_000}
TASKS = {"topic": "accuracy", "headline": "rougeL"}
# method: family, trainable share, quality base, checkpoint bytes (tiny-a), merges
METHODS = {
    "full": ("full", 1.0, 0.80, None, False),
    "lora": ("reparameterization", 0.01, 0.78, 40_000, True),
    ODD: ("reparameterization", 0.02, 0.79, 80_000, True),
    "bitfit": ("selective", 0.001, 0.70, 4_000, False),
    "prompt-tuning": ("soft-prompt", 0.0005, 0.60, 2_000, False),
}
MIB = 1024**2


@pytest.fixture(autouse=True, scope="module")
def small_pngs():
    """Same plots, fewer pixels: PNG rasterizing is most of this file's run time."""
    from bench.report.plots import style

    dpi, style.DPI = style.DPI, 50
    yield
    style.DPI = dpi


def synthetic_rows() -> list[dict]:
    rows = []
    for (model, size), (task, metric), (method, spec), seed in itertools.product(
            MODELS.items(), TASKS.items(), METHODS.items(), range(3)):
        family, share, quality, ckpt, merges = spec
        d = seed - 1  # -1, 0, +1: mean = base, sample std = step
        scale = size / 1_000_000
        weights = 4 * size
        trainable = int(size * share)
        q = quality - (0.1 if task == "headline" else 0.0) + (0.05 if model == "tiny-b" else 0.0) + 0.01 * d
        grads, optim = 4 * trainable, 8 * trainable
        act = 50 * MIB * scale
        baseline = weights + 200 * MIB
        rows.append({
            "method": method, "family": family, "model": model, "task": task, "seed": seed, "status": "ok",
            "total_params": size, "trainable_params": trainable, "trainable_fraction": share,
            "peak_mem_bytes": baseline + grads + optim + act + d * MIB, "mem_source": "process_rss",
            "mem_baseline_bytes": baseline, "mem_weights_bytes": weights, "mem_grads_bytes": grads,
            "mem_optimizer_bytes": optim, "mem_activations_bytes": act + d * MIB,
            "train_seconds": 10.0, "train_tokens_per_s": 1000.0 / (1 + share) / scale + 10 * d,
            "train_samples_per_s": 8.0, "train_flops": 1e12 * scale, "final_loss": 1.0,
            "quality": q, "quality_metric": metric, metric: q,
            "latency_ms_p50": 20.0 * scale + d, "latency_ms_p90": 25.0 * scale,
            "latency_ms_p50_merged": 15.0 * scale + d if merges else None,
            "checkpoint_bytes": (weights if ckpt is None else ckpt * scale),
            "can_merge": merges,
            # prompt tuning: the probe did not run -> n/a, which must never print or plot as 0
            "forgetting": None if method == "prompt-tuning" else 0.1 * share + 0.001 * d,
            "forgetting_probe": None if method == "prompt-tuning" else "retrieval_recall@1",
            "probe_before": 0.9, "probe_after": 0.88,
            "error_type": None, "error_phase": None, "error_message": None,
            "method_params": json.dumps({"r": 8} if "lora" in method else {}), "learning_rate": 1e-3,
            "max_steps": 5, "trial_dir": f"/x/{model}/{task}/{method}/{seed}", "finished_at": "2026-01-01T00:00:00",
        })
    return rows


FAILED = {"method": "adapter-houlsby", "family": "adapter", "model": "tiny-a", "task": "topic", "seed": 0,
          "status": "failed", "error_type": "OutOfMemoryError", "error_phase": "train",
          "error_message": "CUDA out of memory. Tried to allocate 2.00 GiB", "method_params": "{}",
          "learning_rate": 1e-3, "max_steps": 5}
SKIPPED = {"method": "prefix-tuning", "family": "soft-prompt", "model": "tiny-b", "task": "topic", "seed": 1,
           "status": "skipped", "error_type": "Unsupported", "error_phase": "config",
           "error_message": "prefix tuning needs a decoder", "method_params": "{}", "learning_rate": 1e-3,
           "max_steps": 5}


def synthetic() -> pd.DataFrame:
    return pd.DataFrame(synthetic_rows() + [FAILED, SKIPPED])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("results") / "synthetic"
    folder.mkdir()
    synthetic().to_csv(folder / "trials.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def report(sweep, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "synthetic"
    html = build_report(sweep, out, Budget(max_memory=parse_size("300MiB")))
    assert html == out / "report.html"
    return out


# --- Pareto -------------------------------------------------------------------------------------------------------

def brute_force_front(points: np.ndarray) -> set[int]:
    """Indices of non-dominated points, maximizing column 0 and minimizing column 1."""
    keep = set()
    for i, (q, c) in enumerate(points):
        if np.isnan(q) or np.isnan(c):
            continue
        if not any((q2 >= q and c2 <= c) and (q2 > q or c2 < c) for j, (q2, c2) in enumerate(points)
                   if j != i and not (np.isnan(q2) or np.isnan(c2))):
            keep.add(i)
    return keep


def test_pareto_front_is_exactly_the_non_dominated_points():
    frame = pd.DataFrame({"q": [0.9, 0.8, 0.8, 0.7, 0.95, np.nan, 0.8], "cost": [10, 5, 6, 5, 20, 1, 5]})
    # 0: (0.9, 10) kept; 1 and 6 tie at (0.8, 5): both kept; 2 dominated by 1; 3 dominated by 1; 4 best quality kept;
    # 5 has no quality: neither kept nor dominating anything
    assert list(frame.index[pareto_mask(frame, {"q": "max", "cost": "min"})]) == [0, 1, 4, 6]
    rng = np.random.default_rng(0)
    for _ in range(20):
        points = rng.integers(0, 6, size=(15, 2)).astype(float)
        points[rng.random(15) < 0.1, 0] = np.nan
        frame = pd.DataFrame(points, columns=["q", "cost"])
        mask = pareto_mask(frame, {"q": "max", "cost": "min"})
        assert set(np.flatnonzero(mask)) == brute_force_front(points)


# --- aggregation --------------------------------------------------------------------------------------------------

def test_mean_std_count_and_best_marks():
    agg = aggregate(normalize(synthetic()))
    row = agg[(agg["model"] == "tiny-a") & (agg["task"] == "topic") & (agg["method"] == "lora")].iloc[0]
    assert row["n_seeds"] == 3 and row["quality_n"] == 3
    assert row["quality_mean"] == pytest.approx(0.78)
    assert row["quality_std"] == pytest.approx(0.01)
    assert row["latency_ms_p50_std"] == pytest.approx(1.0)
    marks = best_marks(agg, ["quality", "checkpoint_bytes", "forgetting"])
    for (model, task), group in agg.groupby(["model", "task"]):
        def best(col, group=group):
            return set(group.loc[marks.loc[group.index, col], "method"])

        # 0.80, 0.79, 0.78 with std 0.01 over 3 seeds: inside the noise on t(2); 0.70 is not
        assert best("quality") == {"full", ODD, "lora"}
        assert best("checkpoint_bytes") == {"prompt-tuning"}
        # bitfit 0.0001, lora 0.001 and ODD 0.002 with std 0.001 on t(2): tied; prompt-tuning's n/a never best
        assert best("forgetting") == {"bitfit", "lora", ODD}
    # failed and skipped trials are not averaged in
    assert "adapter-houlsby" not in set(agg["method"])


def test_cost_table_prints_mean_std_and_na():
    agg = aggregate(normalize(synthetic()))
    table = cost_table(agg)
    col = {name: i for i, name in enumerate(table.columns)}
    for row in table.rows:
        if row[2].value == "prompt-tuning":
            assert row[col["latency merged (ms)"]].value == "n/a" and row[col["forgetting"]].value == "n/a"
        if row[2].value == "full" and row[0].value == "tiny-a" and row[1].value == "topic":
            quality = row[col["quality"]]
            assert (quality.value, quality.std, quality.best) == ("0.800", "0.010", True)
    frame = table.frame[table.frame["method"] == "prompt-tuning"]
    assert frame["latency_ms_p50_merged_mean"].isna().all() and frame["forgetting_mean"].isna().all()


def test_paper_table_groups_by_model_with_plus_minus_and_average():
    table = paper_table(aggregate(normalize(synthetic())))
    assert table.columns == ["model", "method", "# trainable params", "headline (ROUGE-L)", "topic (acc)", "avg."]
    rows = {(r[0].value, r[1].value): r for r in table.rows}
    full = rows[("tiny-a", "full")]
    assert (full[4].value, full[4].std, full[4].best) == ("80.0", "1.0", True)
    assert (full[3].value, full[3].std) == ("70.0", "1.0")
    assert full[5].value == "75.0" and not full[5].best  # no test stands behind an average: never bold
    assert [r[0].value for r in table.rows] == ["tiny-a"] * 5 + ["tiny-b"] * 5  # smallest model first
    text = to_latex(table)
    assert r"80.0 $\pm$ 1.0" in text and "\\toprule" in text and "\\bottomrule" in text


def test_a_quality_at_a_rate_not_chosen_for_its_model_is_marked_in_both_tables(tmp_path):
    """A trial whose record says its rate was borrowed from another model gets ‡ after its quality, with the legend;
    one chosen for its model gets none; a record made before the flag is judged by conf/method/ (no rate there was
    chosen on these tiny models); the flag survives trials.csv."""
    rows = synthetic_rows()
    for row in rows:
        row["learning_rate_chosen_for_model"] = None if row["model"] == "tiny-b" else row["method"] != "lora"
    (tmp_path / "s").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "s" / "trials.csv", index=False)
    agg = aggregate(load_trials(tmp_path / "s"))
    expected = {("tiny-a", "lora")} | {("tiny-b", label) for label in agg["label"]}
    for table, method_col, quality_cols in ((cost_table(agg), 2, ["quality"]),
                                            (paper_table(agg), 1, ["headline (ROUGE-L)", "topic (acc)"])):
        marked = {(r[0].value, r[method_col].value) for r in table.rows
                  for c in quality_cols if "‡" in r[table.columns.index(c)].note}
        assert marked == expected
        assert any(note.startswith("‡: trained at a learning rate not chosen") for note in table.notes)
    from bench.report.answer import cards

    for card in cards(agg.assign(quality_tied=True)):  # the first screen carries the mark too (all in its top set)
        shown = [(card.title.split(" / ")[0], row[0].value, "‡" in row[1].value) for row in card.table.rows]
        assert shown and all(mark == ((model, label) in expected) for model, label, mark in shown)
        assert any(n.startswith("‡:") for n in card.notes) == any(mark for *_, mark in shown)
    chosen = normalize(pd.DataFrame([{**row, "learning_rate_chosen_for_model": True} for row in synthetic_rows()]))
    unmarked = cost_table(aggregate(chosen))
    assert not any("‡" in c.note for r in unmarked.rows for c in r) and not any("‡" in n for n in unmarked.notes)


def test_a_record_from_before_the_flag_is_judged_by_the_rate_chosen_for_its_model_now():
    """frod's rate was searched on minilm-l6 (6e-3) only; LoRA's on smollm2-135m too (2.7e-3); what a record says
    itself stands."""
    from bench.report.load import rate_chosen

    rows = [("frod", "minilm-l6", 6e-3, None), ("frod", "minilm-l6", 2e-2, None), ("frod", "smollm2-135m", 6e-3, None),
            ("lora", "smollm2-135m", 2.7e-3, None), ("lora", "smollm2-135m", float("nan"), None),
            ("lora", "smollm2-135m", 2.7e-3, False), ("frod", "smollm2-135m", 6e-3, True)]
    table = pd.DataFrame(rows, columns=["method", "model", "learning_rate", "learning_rate_chosen_for_model"])
    assert list(rate_chosen(table)) == [True, False, False, True, None, False, True]


def test_latex_escapes_names():
    assert latex_escape(ODD) == r"lora\_r8\&x\%"
    assert latex_escape("a_b#c$d{e}~f^g\\h<i") == (r"a\_b\#c\$d\{e\}\textasciitilde{}f\textasciicircum{}g"
                                                   r"\textbackslash{}h\textless{}i")
    text = to_latex(cost_table(aggregate(normalize(synthetic()))))
    assert r"lora\_r8\&x\%" in text and ODD not in text
    body = text.split("\\midrule", 1)[1].split("\\bottomrule")[0]
    for line in body.strip().splitlines():  # every row has exactly one unescaped & per column boundary
        if line.startswith("\\midrule"):
            continue
        assert len(re.findall(r"(?<!\\)&", line)) == text.split("\\toprule")[1].splitlines()[1].count(" & ")


def test_storage_convention():
    frame = storage_frame(aggregate(normalize(synthetic())))
    a = frame[frame["model"] == "tiny-a"].set_index("label")
    full_copy = 4 * MODELS["tiny-a"]
    assert a.at["full", "n100_bytes"] == 100 * full_copy
    assert a.at["lora", "n100_bytes"] == full_copy + 100 * 40_000
    assert a.at["lora", "saving_vs_full_n100"] == pytest.approx(100 * full_copy / (full_copy + 100 * 40_000))


def test_storage_estimates_full_copy_without_a_full_trial():
    trials = normalize(synthetic())
    frame = storage_frame(aggregate(trials[trials["method"] != "full"]))
    estimated = frame[frame["estimated"] & (frame["model"] == "tiny-a")]
    assert len(estimated) == 1 and estimated["n1_bytes"].iloc[0] == 4 * MODELS["tiny-a"]


# --- recommendation -----------------------------------------------------------------------------------------------

def test_parse_size():
    assert parse_size("8GiB") == 8 * 1024**3
    assert parse_size("50MB") == 50e6
    assert parse_size("512M") == 512 * MIB
    assert parse_size("1e3") == 1000
    with pytest.raises(ValueError):
        parse_size("8 parsecs")


def test_recommend_best_within_budget_and_pareto():
    agg = aggregate(normalize(synthetic()))
    picks = recommend(agg, Budget(max_storage=parse_size("50KB"), min_quality=0.65))
    group = picks[(picks["model"] == "tiny-a") & (picks["task"] == "topic")].set_index("label")
    # full (4 MB) and lora_r8&x% (80 KB) break the storage budget; prompt-tuning (0.60) the quality one
    assert set(group.index[group["fits"]]) == {"lora", "bitfit"}
    assert list(group.index[group["recommended"]]) == ["lora"]
    assert set(group.index[group["pareto"]]) == {"lora", "bitfit"}  # bitfit: smaller checkpoint and memory
    assert "n/a" not in " ".join(group.at["full", "why_not"])
    none = recommend(agg, Budget(max_memory=1.0))
    assert not none["recommended"].any() and not none["pareto"].any()
    # a budget on a metric that is n/a excludes the method: it cannot be shown to fit
    forget = recommend(agg, Budget(max_forgetting=1.0)).set_index("label")
    assert not forget.loc["prompt-tuning", "fits"].any()


# --- the whole report ---------------------------------------------------------------------------------------------

PLOT_FILES = ["quality_vs_trainable_fraction", "quality_vs_peak_memory", "quality_vs_throughput", "memory_breakdown",
              "latency", "forgetting_vs_quality", "checkpoint_size", "scaling_topic", "scaling_headline"]


def test_every_plot_is_written_and_not_empty(report):
    for name in PLOT_FILES:
        for ext in ("png", "svg"):
            path = report / "plots" / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 1000, path
    for name in ("cost", "paper", "storage", "recommendation", "failures"):
        for ext in ("md", "csv", "tex"):
            assert (report / "tables" / f"{name}.{ext}").stat().st_size > 0


class References(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def test_html_references_only_files_that_exist(report):
    parser = References()
    parser.feed((report / "report.html").read_text())
    images = [r for r in parser.refs if r.startswith("data:image/svg+xml;base64,")]
    files = [r for r in parser.refs if not r.startswith(("data:", "#"))]
    assert len(images) == len(PLOT_FILES) + 1  # every plot embedded (the main one twice): self-contained
    assert files and all(not re.match(r"^[a-z]+://", r) for r in files)
    for ref in files:
        assert (report / ref).is_file(), ref
    md = (report / "report.md").read_text()
    for ref in re.findall(r"\]\(([^)]+)\)", md):
        assert (report / ref).is_file(), ref


def test_report_content(report):
    md = (report / "report.md").read_text()
    html = (report / "report.html").read_text()
    for text in ("Key figures", "Recommendation", "Failed and skipped trials", "Metric definitions"):
        assert text in md and text in html
    # failed and skipped trials listed with their reasons
    assert "OutOfMemoryError: CUDA out of memory" in md and "prefix tuning needs a decoder" in md
    assert "| skipped | tiny-b | topic | prefix-tuning | 1 | config |" in md and "| failed |" in md
    # the paper table carries ± over 3 seeds
    assert "80.0 ± 1.0" in md and "80.0 ± 1.0" in html
    assert "peak memory ≤ 300.00 MiB" in md
    assert "lora_r8&amp;x%" in html
    assert "Serving K tasks" not in md and 'id="serving"' not in html  # no serving record, no serving section


def test_na_never_becomes_zero(report):
    cost = pd.read_csv(report / "tables" / "cost.csv")
    prompt = cost[cost["method"] == "prompt-tuning"]
    assert prompt["latency_ms_p50_merged_mean"].isna().all() and prompt["forgetting_mean"].isna().all()
    md = (report / "tables" / "cost.md").read_text()
    for line in md.splitlines():
        if "| prompt-tuning |" in line:
            cells = [c.strip() for c in line.split("|")]
            assert cells.count("n/a") >= 2 and "+0.000" not in cells and "0.0" not in cells


def test_partial_sweep_with_failures_and_one_seed(tmp_path):
    rows = [r for r in synthetic_rows() if r["model"] == "tiny-a" and r["task"] == "topic" and r["seed"] == 0]
    rows[1]["status"], rows[1]["error_type"], rows[1]["error_message"] = "failed", "RuntimeError", "loss is NaN"
    for key in ("quality", "accuracy", "peak_mem_bytes"):
        rows[1][key] = None
    rows[2]["checkpoint_bytes"] = None  # a metric missing on a finished trial
    folder = tmp_path / "partial"
    folder.mkdir()
    pd.DataFrame(rows + [FAILED]).to_csv(folder / "trials.csv", index=False)
    out = tmp_path / "out"
    report_main([str(folder), "--out", str(out), "--max-memory", "8GiB", "--max-storage", "50MB"])
    md = (out / "report.md").read_text()
    assert "loss is NaN" in md and "scaling with model size: the sweep has one model size" in md
    rows = [line for line in (out / "tables" / "paper.md").read_text().splitlines() if line.startswith("| tiny-a")]
    assert rows and not any("±" in line for line in rows)  # one seed: no spread
    for name in PLOT_FILES[:7]:
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
    assert not list((out / "plots").glob("scaling*"))


def test_only_failed_trials_still_report(tmp_path):
    folder = tmp_path / "dead"
    folder.mkdir()
    pd.DataFrame([FAILED]).to_csv(folder / "trials.csv", index=False)
    build_report(folder, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "No finished trial yet" in md and "OutOfMemoryError" in md


def test_variants_of_one_method_get_their_own_label():
    rows = [r for r in synthetic_rows() if r["method"] == "lora" and r["model"] == "tiny-a" and r["task"] == "topic"]
    other = [dict(r, method_params=json.dumps({"r": 16})) for r in rows]
    labels = set(normalize(pd.DataFrame(rows + other))["label"])
    assert labels == {"lora (r=8)", "lora (r=16)"}


def test_the_report_reads_mfu_as_the_trial_recorded_it():
    """A trial that timed its peak under load records mfu n/a; the report never recomputes it from another trial's
    peak (it did: rate / best peak of the same source brought the n/a back as a number)."""
    rows = [r for r in synthetic_rows() if r["status"] == "ok"][:3]
    cpu = "measured fp32 matmul 1024^3, 1 threads"
    peaks, rates, mfus = [30e9, 150e9, 150e9], [45e9, 60e9, 30e9], [None, 0.4, 0.2]
    rows = [dict(r, peak_flops_per_s=p, train_flops_per_s=f, peak_flops_source=cpu, mfu=m)
            for r, p, f, m in zip(rows, peaks, rates, mfus)]
    mfu = normalize(pd.DataFrame(rows))["mfu"].tolist()
    assert np.isnan(mfu[0]) and mfu[1:] == pytest.approx([0.4, 0.2])


def test_reads_record_files_of_a_running_sweep(tmp_path):
    """The live path: record.json files (as trials write them) plus a half-written temp file, no trials.csv."""
    from bench.results.record import TrialRecord, write

    for seed in range(2):
        row = synthetic_rows()[seed]
        identity = {k: row[k] for k in ("method", "family", "model", "task", "seed")}
        metrics = {k: v for k, v in row.items() if k not in identity and k not in ("status", "trial_dir")}
        record = TrialRecord(status="ok", config={"method": {"params": {}}}, key=f"k{seed}", identity=identity,
                             metrics=metrics)
        write(record, tmp_path / "sweep" / f"trial{seed}")
    (tmp_path / "sweep" / "trial2").mkdir()
    (tmp_path / "sweep" / "trial2" / "record.json").write_text('{"status": "ok", "ident')  # killed mid-write
    trials = load_trials(tmp_path / "sweep")
    assert len(trials) == 2 and set(trials["seed"]) == {0, 1}


def test_cli_rejects_a_missing_folder(tmp_path, capsys):
    assert report_main([str(tmp_path / "nope")]) == 2
    assert "no sweep folder" in capsys.readouterr().err
    (tmp_path / "sweep").mkdir()
    assert report_main([str(tmp_path / "sweep"), "--latency-from", str(tmp_path / "latency")]) == 2
    assert f"no sweep folder or trials table at {tmp_path / 'latency'}" in capsys.readouterr().err


def test_configs_the_labels_cannot_tell_apart_are_not_averaged_as_seeds():
    rows = [r for r in synthetic_rows() if r["method"] == "lora" and r["model"] == "tiny-a" and r["task"] == "topic"]
    small = [dict(r, key=f"a{r['seed']}", trial_dir=f"/x/tiny-a__topic__lora__seed{r['seed']}__train.batch_size=8")
             for r in rows]
    big = [dict(r, key=f"b{r['seed']}", trial_dir=f"/x/tiny-a__topic__lora__seed{r['seed']}__train.batch_size=16")
           for r in rows]
    rerun = [dict(small[0], finished_at="2026-02-01T00:00:00")]  # the same config again: one trial, not two
    trials = normalize(pd.DataFrame(small + big + rerun))
    assert len(trials) == 6
    assert set(trials["label"]) == {"lora (train.batch_size=8)", "lora (train.batch_size=16)"}
    assert set(aggregate(trials)["n_seeds"]) == {3}


def test_a_sweep_with_no_record_yet_reports_so(tmp_path):
    (tmp_path / "started").mkdir()
    build_report(tmp_path / "started", tmp_path / "out")
    assert "0 trials" in (tmp_path / "out" / "report.md").read_text()


# --- uncertainty: tie sets instead of single winners ----------------------------------------------------------------

def item_sweep(folder: Path, accuracies: dict[str, float], n_items: int = 300, seeds: int = 3,
               majority: float | None = None, items: bool = True) -> Path:
    """A sweep folder as trials write it: record.json and, with `items`, items.json (per-item correct 1/0) beside
    it. Every method sees the same items (shared difficulty) plus its own per-item noise."""
    from bench.common import stats
    from bench.results.record import TrialRecord, write

    rng = np.random.default_rng(11)
    hard = rng.random(n_items)
    base = synthetic_rows()[0]
    for method, accuracy in accuracies.items():
        for seed in range(seeds):
            correct = (hard + rng.normal(0, 0.3, n_items) < accuracy + 0.15 * (accuracy - 0.5)).astype(int)
            quality = float(correct.mean())
            low, high = stats.wilson_interval(correct.sum(), n_items)
            metrics = {k: base[k] for k in ("total_params", "trainable_params", "trainable_fraction", "peak_mem_bytes",
                                            "train_tokens_per_s", "checkpoint_bytes", "latency_ms_p50")}
            metrics.update(quality=quality, accuracy=quality, quality_metric="accuracy", quality_ci_low=low,
                           quality_ci_high=high, n_eval=n_items, majority_share=majority)
            identity = {"method": method, "family": "full" if method == "full" else "reparameterization",
                        "model": "tiny-a", "task": "topic", "seed": seed}
            record = TrialRecord(status="ok", config={"method": {"params": {}}}, key=f"{method}{seed}",
                                 identity=identity, metrics=metrics,
                                 items={"quality": correct.tolist()} if items else {})
            write(record, folder / f"tiny-a__topic__{method}__seed{seed}")
    return folder


def quality_decision(folder: Path):
    from bench.report import uncertainty

    trials = uncertainty.fill_trial_intervals(load_trials(folder))
    return trials, uncertainty.decisions(trials)[("tiny-a", "topic", "quality")]


def test_methods_apart_by_less_than_the_noise_are_reported_tied(tmp_path):
    trials, decision = quality_decision(item_sweep(tmp_path / "close", {"lora": 0.80, "dora": 0.795, "full": 0.79,
                                                                       "vera": 0.55}))
    assert decision.paired and "multiple comparisons with the best over 300 items × 3 seed(s)" in decision.ties.how
    assert set(decision.ties.tied) == {"lora", "dora", "full"} and decision.ties.worse == ["vera"]
    assert decision.describe().startswith("not shown worse than the best: ")
    assert decision.shown_worse() == {"vera": f"below {decision.ties.top} on 3 of 3 seeds"}  # the verdict's seeds
    picks = recommend(aggregate(trials), Budget(), trials)
    assert set(picks.loc[picks["recommended"], "label"]) == {"lora", "dora", "full"}
    line = next(iter(__import__("bench.report.recommend", fromlist=["summary"]).summary(picks, Budget())))
    assert "not shown worse than the best quality" in line and "vera" not in line.split("Pareto")[0]


def test_methods_apart_clearly_are_not_tied(tmp_path):
    _, decision = quality_decision(item_sweep(tmp_path / "apart", {"lora": 0.90, "full": 0.75, "vera": 0.70}))
    assert decision.paired and decision.ties.tied == ["lora"] and set(decision.ties.worse) == {"full", "vera"}


def test_ties_fall_back_to_intervals_without_items_and_say_so(tmp_path):
    from bench.report import uncertainty

    folder = item_sweep(tmp_path / "no-items", {"lora": 0.80, "dora": 0.79, "vera": 0.55}, items=False)
    trials, decision = quality_decision(folder)
    assert not decision.paired and "unpaired" in decision.ties.how
    assert set(decision.ties.tied) == {"lora", "dora"}
    assert any("interval recorded by the trial" in line for line in uncertainty.evidence(trials, {"k": decision}))


def test_old_tables_get_wilson_intervals_from_an_inferred_item_count():
    from bench.report import uncertainty

    rows = [dict(r, quality=a, accuracy=a) for r, a in zip(
        [r for r in synthetic_rows() if r["task"] == "topic"][:6], [0.97, 0.935, 0.925, 0.92, 0.815, 0.675])]
    assert uncertainty.infer_n_eval([r["quality"] for r in rows]) == 200
    trials = uncertainty.fill_trial_intervals(normalize(pd.DataFrame(rows)))
    assert set(trials["ci_source"]) == {"inferred"} and set(trials["n_eval"]) == {200}
    assert uncertainty.infer_n_eval([0.5, 0.75]) is None  # two values fit too many counts


def test_quality_within_noise_of_the_majority_baseline_is_flagged_and_never_recommended(tmp_path):
    folder = item_sweep(tmp_path / "baseline", {"lora": 0.90, "prompt-tuning": 0.46}, n_items=100, seeds=1,
                        majority=0.5)
    trials, decision = quality_decision(folder)
    assert decision.at_baseline == ["prompt-tuning"]
    picks = recommend(aggregate(trials), Budget(min_quality=0.0), trials).set_index("label")
    assert picks.at["prompt-tuning", "at_baseline"] and not picks.at["prompt-tuning", "recommended"]
    only = recommend(aggregate(trials[trials["method"] == "prompt-tuning"]), Budget(),
                     trials[trials["method"] == "prompt-tuning"])
    assert not only["recommended"].any()  # alone it is still not distinguishable from guessing the majority


def test_a_method_with_a_seed_at_the_majority_baseline_is_unstable_and_never_recommended(tmp_path):
    """Two seeds near the top and one collapsed to the majority class: the mean over seeds can stay tied with the
    top (three seeds leave a wide interval), but recommending it would be betting on the seed."""
    folder = item_sweep(tmp_path / "unstable", {"lora": 0.90, "full": 0.88, "adapter": 0.90}, n_items=200,
                        majority=0.12)
    item_sweep(folder, {"adapter": 0.10}, n_items=200, seeds=1, majority=0.12)  # seed 0 collapses: 0.14 [0.10, 0.19]
    trials, decision = quality_decision(folder)
    assert decision.unstable["adapter"].startswith("1 of 3 seeds at the majority-class baseline; seed 0 at 0.140")
    assert set(decision.unstable) == {"adapter"} and "adapter" not in decision.ties.tied
    picks = recommend(aggregate(trials), Budget(), trials).set_index("label")
    assert picks.at["adapter", "unstable"] and not picks.at["adapter", "recommended"]
    assert picks.loc[["lora", "full"], "recommended"].all()
    line = " ".join(summary(picks.reset_index(), Budget()))
    assert "Unstable, never recommended nor on the front: adapter (1 of 3 seeds at the majority-class baseline" in line
    assert not picks.at["adapter", "pareto"]


def test_forgetting_on_perplexity_is_compared_on_the_log_scale_where_a_collapsed_method_is_worse():
    """Perplexity rises of ~0.5 against a method that collapsed (1e6 to 1e9 on three seeds): on the raw scale its
    mean's spread over seeds is so wide it stays tied with the best; log(after / before) separates them."""
    from bench.report import uncertainty

    def rows(probe):
        values = {"lora": [0.50, 0.60, 0.55], "full": [0.52, 0.58, 0.50], "adapter": [1e6, 3e7, 1e9]}
        return pd.DataFrame([{"model": "m", "task": "t", "label": label, "seed": seed, "forgetting": value,
                              "forgetting_ci_low": 0.9 * value, "forgetting_ci_high": 1.1 * value, "n_probe": 256,
                              "forgetting_probe": probe}
                             for label, seeds in values.items() for seed, value in enumerate(seeds)])

    logged = uncertainty.decide(rows("perplexity"), "forgetting", False)
    assert logged.log_scale and logged.ties.worse == ["adapter"] and set(logged.ties.tied) == {"lora", "full"}
    low, high = logged.interval["lora"]
    assert 0.4 < low < 0.55 < high < 0.7  # shown back as a relative rise
    raw = uncertainty.decide(rows("retrieval_recall@1"), "forgetting", False)
    assert not raw.log_scale and "adapter" in raw.ties.tied  # what the raw scale did


def test_a_huge_forgetting_reads_in_three_digits():
    from bench.results.metrics import number

    assert number("forgetting", 0.25) == "+0.250"
    assert number("forgetting", 5.2594107548347742e13) == "+5.26e+13"


def test_report_of_a_tied_sweep_names_the_tie_set(tmp_path):
    folder = item_sweep(tmp_path / "tied", {"lora": 0.80, "dora": 0.795, "full": 0.79, "vera": 0.55}, seeds=2,
                        majority=0.3)
    build_report(folder, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    answer = md.split("\n## The answer")[1].split("\n## ")[0]
    tied = answer.split("Not shown worse than the best: ")[1].split(".")[0]
    assert set(tied.split(", ")) >= {"lora", "dora", "full"}  # vera too: two seeds cannot show it worse
    assert "2 seed(s): the spread between training runs is barely measured" in answer
    assert "n = 300 items, 2 seed(s)" in answer and "Paired over the same items" in md
    cost = pd.read_csv(tmp_path / "out" / "tables" / "cost.csv")
    assert set(cost.loc[cost["quality_tied"].eq(True), "method"]) == set(tied.split(", "))
    assert cost["quality_ci_low"].notna().all() and set(cost["n_eval"]) == {300}
    findings = md.split("\n## Published findings")[1].split("\n## ")[0]
    # two seeds: no verdict stronger than not separable
    assert "(lower bound above −0.02: not separable)" in findings and "(300 items × 2 seed(s); " in findings
    assert "<strong>not separable</strong>" in (tmp_path / "out" / "report.html").read_text()
    assert "**reproduced**" not in findings


# --- training curves (train.eval_every) -------------------------------------------------------------------------------

CURVE_PLOT = "learning_vs_forgetting"


def curve_sweep(folder: Path, curves: bool = True) -> Path:
    """Two trials as trials write them, lora and full, each with its record.json and an items.json that holds, with
    `curves`, three checkpoints: quality rising, full forgetting faster than lora."""
    from bench.results.record import TrialRecord, write

    base = synthetic_rows()[0]
    for method, family, quality, forgets in (("lora", "reparameterization", 0.9, 0.05), ("full", "full", 0.92, 0.3)):
        metrics = {k: base[k] for k in ("total_params", "trainable_params", "trainable_fraction", "peak_mem_bytes",
                                        "train_tokens_per_s", "checkpoint_bytes", "forgetting_probe")}
        metrics.update(quality=quality, accuracy=quality, quality_metric="accuracy", forgetting=forgets)
        points = [{"step": step, "train_loss": 1.0 / step, "val_quality": quality * step / 60,
                   "val_quality_ci_low": None, "val_quality_ci_high": None, "n_val": 100, "probe": 0.9,
                   "forgetting": forgets * step / 60, "seconds": 0.5} for step in (20, 40, 60)]
        if curves:
            metrics.update(curve_points=len(points), val_quality=points[-1]["val_quality"])
        identity = {"method": method, "family": family, "model": "tiny-a", "task": "topic", "seed": 0}
        record = TrialRecord(status="ok", config={"method": {"params": {}}}, key=method, identity=identity,
                             metrics=metrics, items={"quality": [1, 0, 1], **({"curve": points} if curves else {})})
        write(record, folder / f"tiny-a__topic__{method}__seed0")
    return folder


def test_trials_with_curves_get_the_learning_vs_forgetting_plot(tmp_path):
    build_report(curve_sweep(tmp_path / "curves"), tmp_path / "out")
    for ext in ("png", "svg"):
        path = tmp_path / "out" / "plots" / f"{CURVE_PLOT}.{ext}"
        assert path.is_file() and path.stat().st_size > 1000, path
    md = (tmp_path / "out" / "report.md").read_text()
    title = "Learning vs forgetting over training"
    assert f"### {title}\n\n![{title}](plots/{CURVE_PLOT}.png)" in md
    assert "validation quality" in md and "mean over seeds at each step (1 seed(s))" in md
    assert "Learning vs forgetting over training" in (tmp_path / "out" / "report.html").read_text()


def test_curve_points_are_averaged_over_seeds_per_step():
    from bench.report.plots.curve import curve_points, seed_means

    trials = normalize(pd.DataFrame([dict(r, curve=[{"step": 10, "val_quality": 0.5 + 0.1 * r["seed"],
                                                      "forgetting": 0.1 * r["seed"]}])
                                     for r in synthetic_rows() if r["model"] == "tiny-a" and r["task"] == "topic"]))
    means = seed_means(curve_points(trials)).set_index("label")
    assert len(means) == len(METHODS) and set(means["seeds"]) == {3}
    assert means.at["lora", "val_quality"] == pytest.approx(0.6)
    assert means.at["lora", "forgetting"] == pytest.approx(0.1)


def test_no_curve_no_curve_plot(tmp_path):
    """Without curves (trials run without eval_every, or a bare trials.csv whose trial folders are gone) the plot is
    not drawn and not listed as left out: curves are opt-in."""
    import shutil

    from bench.results.consolidate import load_table

    build_report(curve_sweep(tmp_path / "flat", curves=False), tmp_path / "flat-out")
    table = load_table(curve_sweep(tmp_path / "curves"))
    (tmp_path / "bare").mkdir()
    table.to_csv(tmp_path / "bare" / "trials.csv", index=False)
    shutil.rmtree(tmp_path / "curves")
    build_report(tmp_path / "bare", tmp_path / "bare-out")
    for out in ("flat-out", "bare-out"):
        assert not list((tmp_path / out / "plots").glob(f"{CURVE_PLOT}.*"))
        assert "forgetting_vs_quality.png" in {p.name for p in (tmp_path / out / "plots").iterdir()}
        assert "over training" not in (tmp_path / out / "report.md").read_text()


# --- serving records (peft-bench-serve) -------------------------------------------------------------------------------

SERVING_PLOTS = ("latency_vs_k", "throughput_vs_k", "memory_vs_k", "swap_cost")


def fake_serving_record(folder: Path, method: str, k: int, mem_mib: float, ms: float, copies_measured: int) -> None:
    """A serving record with round figures, as peft-bench-serve writes it (the report reads nothing else)."""
    from bench.results.record import TrialRecord, identity, write

    figures = {"serve_k": k, "mem_adapters_bytes": mem_mib * 2**20, "copies_mem_bytes": k * 100 * 2**20,
               "copies_measured": copies_measured, "base_ms_p50": 5.0, "base_rps": 300.0}
    for mode in ("mixed", "single", "merged"):
        for stream in ("uniform", "zipf", "round_robin"):
            slower = {"mixed": 0, "single": 1, "merged": 2}[mode]
            figures.update({f"{mode}_{stream}_ms_p50": ms + slower, f"{mode}_{stream}_rps": 1000 / (ms + slower)})
    figures.update({"swap_set_ms_p50": 0.3, "swap_hotswap_ms_p50": None, "swap_merge_ms_p50": 2.0} if k > 1 else {})
    config = {"method": {"name": method}, "model": {"name": "m"}, "task": {"name": "t"}, "seed": 0}
    write(TrialRecord(status="ok", config=config, key=f"{method}{k}", identity=identity(config), metrics=figures),
          folder / f"{method}{k}")


def serving_sweep(folder: Path) -> Path:
    """LoRA and IA3 served at K = 1 and 4, and a serving trial whose process died (its record has serve_k only)."""
    from bench.results.record import TrialRecord, write

    for method, mem in (("lora", 1.0), ("ia3", 0.5)):
        fake_serving_record(folder, method, 1, mem, 10.0, 1)
        fake_serving_record(folder, method, 4, 4 * mem + 1, 12.0, 2)
    died = {"type": "ProcessDied", "phase": "process", "message": "trial process died from SIGKILL"}
    write(TrialRecord(status="failed", config={}, key="died", metrics={"serve_k": 8}, error=died,
                      identity={"method": "loha", "family": None, "model": "m", "task": "t", "seed": 0}),
          folder / "loha8")
    return folder


def test_serving_section(tmp_path):
    from bench.report import serving

    blocks = serving.section(serving_sweep(tmp_path / "serve"), tmp_path / "out")
    sentence = blocks[1].content[0]
    assert sentence == ("m: serving 4 tasks with lora costs 4.0 MiB and +2.0 ms per request (p50 relative to the base "
                        "alone in the same rounds, uniform requests, mixed batches) more than one task; 4 full copies "
                        "would cost 400.0 MiB of memory (extrapolated from 2 loaded copies).")
    drawn = {path.name for path in (tmp_path / "out" / "plots").iterdir()}
    assert {f"serving_{name}.png" for name in SERVING_PLOTS} <= drawn
    assert "no added latency" not in sentence  # +2.0 ms: a cost, said as one
    assert blocks[-1].content == ["loha on m (K=8): failed (trial process died from SIGKILL)"]
    (tmp_path / "empty").mkdir()
    assert serving.section(tmp_path / "empty", tmp_path / "out") == []


def test_report_of_training_and_serving_records(tmp_path):
    """One folder, both kinds: the serving section, and training tables and plots without a serving row."""
    folder = serving_sweep(item_sweep(tmp_path / "both", {"lora": 0.8, "full": 0.82}, seeds=2))
    out = tmp_path / "out"
    build_report(folder, out)
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "## Serving K tasks" in md and 'id="serving"' in html and md.index("Serving K") < md.index("Metric def")
    assert "4 trials: 4 finished, 0 failed" in md and "loha on m (K=8): failed" in md
    for name in SERVING_PLOTS:
        assert f"plots/serving_{name}.png" in md and (out / "plots" / f"serving_{name}.svg").is_file()
    tables = sorted((out / "tables").glob("*.csv"))
    assert {"cost.csv", "paper.csv", "storage.csv"} <= {path.name for path in tables}
    for path in tables:  # the serving records' model (m) and methods of their own (ia3, loha) are in none
        assert not pd.read_csv(path).astype(str).isin(["m", "ia3", "loha"]).any().any(), path
    assert "None: every trial finished." in md  # the serving trial that died is listed in its own section only
    trials = load_trials(folder)
    assert set(trials["method"]) == {"lora", "full"} and "mixed_uniform_ms_p50" not in trials


def test_report_of_serving_records_alone_is_the_serving_section(tmp_path):
    out = tmp_path / "out"
    build_report(serving_sweep(tmp_path / "serve"), out)
    md = (out / "report.md").read_text()
    assert "## Serving K tasks" in md and "Key figures" not in md and "0 trials" not in md



def test_ratio_columns_are_summarised_by_geometric_means():
    """One slow seed (400 ms beside two at 100) pulls the arithmetic mean to 200; the card divides geometric means."""
    rows = [r for r in synthetic_rows() if r["model"] == "tiny-a" and r["task"] == "topic" and r["method"] == "lora"]
    rows = [dict(r, latency_ms_p50=ms) for r, ms in zip(rows, (100.0, 100.0, 400.0))]
    row = aggregate(normalize(pd.DataFrame(rows))).iloc[0]
    assert row["latency_ms_p50_mean"] == pytest.approx(200.0)
    assert row["latency_ms_p50_gmean"] == pytest.approx(400.0 ** (1 / 3) * 100.0 ** (2 / 3))


def test_one_seed_names_no_method_clear_of_the_rest(tmp_path):
    """make demo runs one seed: item noise alone separates lora from full here, but training noise is not measured,
    so the answer says so, names nothing clear of the rest, and no finding is stronger than not separable."""
    folder = item_sweep(tmp_path / "one-seed", {"lora": 0.92, "full": 0.70, "vera": 0.55}, seeds=1, majority=0.3)
    build_report(folder, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    answer = md.split("\n## The answer")[1].split("\n## ")[0]
    assert "clear of the rest:" not in md and "1 seed(s): the spread between training runs is not measured" in answer
    findings = md.split("\n## Published findings")[1].split("\n## ")[0]
    # the quality half is not separable on one seed; the trainable-fraction half is a count (every method here
    # trains 100%), which one seed can refute
    assert "**reproduced**" not in findings and "(lower bound above −0.02: not separable)" in findings
    assert "not under 1% on every seed" in findings
