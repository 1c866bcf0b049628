"""The serving section of a report: what serving K tasks from one base costs, per method, against K full copies.

    python -m bench.report.serving results/serve [reports/serve]     # the plots, report.md and report.html alone

From the records `peft-bench-serve` writes (one per model x method x K; recognised by their `serve_k` column):
  serving_latency_vs_k     p50 latency per request vs K, one panel per model x request stream, a line per method
                           and serving mode (mixed batches, single-adapter batches, merged weights), each as a
                           multiple of the base alone timed in the same rounds (machine load differs between trials)
  serving_throughput_vs_k  requests per second, the same layout
  serving_memory_vs_k      memory the K resident adapters add, per method, and the memory of K full copies
                           (measured points filled, extrapolated ones hollow on a dashed line)
  serving_swap_cost        switching the active adapter, per method, at the largest K: set_adapter, hot-swap, merge
and one sentence per model: what serving the largest K costs over one task, and what K full copies would cost.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.load import SERVING_COLUMN, read_table
from bench.report.page import Block, write
from bench.report.plots.style import Plot, grid, na_note, rotate_ticks, save

MODES = {"mixed": "-", "single": "--", "merged": ":"}  # line style per serving mode
STREAMS = {"uniform": "uniform", "zipf": "Zipf", "round_robin": "round-robin"}
SWAPS = {"set": "set_adapter", "hotswap": "hot-swap", "merge": "unmerge + merge"}
SWAP_COLOURS = ("#4c72b0", "#dd8452", "#55a868")


def serving_trials(source) -> pd.DataFrame:
    """The serving records of a sweep folder, a consolidated table file, or the table read from either: one row
    per model x method x K."""
    table = source if isinstance(source, pd.DataFrame) else read_table(Path(source))
    if table.empty or SERVING_COLUMN not in table:
        return pd.DataFrame()
    return table[table[SERVING_COLUMN].notna()].assign(serve_k=lambda t: t[SERVING_COLUMN].astype(int))


def _ok(trials: pd.DataFrame) -> pd.DataFrame:
    ok = trials[trials["status"] == "ok"]
    return ok.groupby(["model", "method", "serve_k"], as_index=False, sort=True).median(numeric_only=True)


def _colours(methods) -> dict:
    import seaborn as sns

    names = sorted(set(methods))
    return dict(zip(names, sns.color_palette("colorblind", max(len(names), 1))))


def _k_axis(ax, ks) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(set(ks)), [str(k) for k in sorted(set(ks))])
    ax.set_xlabel("K (tasks served from one base)")


def _plain_log(ax) -> None:
    """Log y axis labelled 0.3, 2, 20 rather than 3x10^-1, 2x10^0, 2x10^1."""
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    # minor ticks labelled at 2 and 5 only: every one of them labelled runs together over one decade
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}" if f"{value:e}"[0] in "25" else ""))


def _legend(fig, colours: dict, extra: list) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, linewidth=2, label=m) for m, c in colours.items()]
    handles += [Line2D([], [], color="0.3", linestyle=s, label=f"{mode} batches") for mode, s in MODES.items()]
    fig.legend(handles=handles + extra, loc="upper left", bbox_to_anchor=(1.0, 0.93), frameon=False)


def base_of(rows: pd.DataFrame, stream: str, figure: str) -> pd.Series:
    """The base alone on the same stream (it answered the same windows in turn with the adapters), else pooled over
    the streams (records that kept only that)."""
    own = rows.get(f"base_{stream}_{figure}")
    pooled = rows[f"base_{figure}"]
    return pooled if own is None else own.fillna(pooled)


def _per_stream(ok: pd.DataFrame, figure: str, unit: str, ylabel: str, folder: Path, name: str, title: str,
                caption: str):
    """One panel per model x stream: each method x mode as a multiple of the base alone timed in the same trial's
    rounds (1 = the base), so that the machine's load, which differs between trials, cancels out."""
    from matplotlib.lines import Line2D

    streams = [s for s in STREAMS if any(f"{m}_{s}_{figure}" in ok for m in MODES)]
    models = list(dict.fromkeys(ok["model"]))
    fig, axes = grid(len(models) * len(streams), ncols=len(streams))
    colours = _colours(ok["method"])
    for index, (model, stream) in enumerate((m, s) for m in models for s in streams):
        ax, rows = axes[index], ok[ok["model"] == model]
        for (method, mode), style in ((mm, MODES[mm[1]]) for mm in ((m, mo) for m in colours for mo in MODES)):
            line = rows[rows["method"] == method]
            ratio = (line[f"{mode}_{stream}_{figure}"] / base_of(line, stream, figure)).dropna()
            if len(ratio):
                ax.plot(line.loc[ratio.index, "serve_k"], ratio, style, marker="o", markersize=4,
                        color=colours[method])
        ax.axhline(1.0, color="0.5", linewidth=1)
        base = rows[f"base_{figure}"].dropna()
        if len(base):
            ax.text(0.99, 0.01, f"base alone: {base.min():.3g}–{base.max():.3g} {unit} over these trials",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="0.35")
        _k_axis(ax, rows["serve_k"])
        _plain_log(ax)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{model}, {STREAMS[stream]} requests")
    _legend(fig, colours, [Line2D([], [], color="0.5", label="base model alone (= 1)")])
    return Plot(name, title, caption, save(fig, folder, name, title))


def latency_vs_k(ok: pd.DataFrame, folder: Path):
    return _per_stream(ok, "ms_p50", "ms", "p50 latency per request, × the base alone (log)", folder,
                       "serving_latency_vs_k", "Serving latency vs K",
                       "Median time from a window of requests arriving to each request's answer, as a multiple of "
                       "the base model alone timed in the same interleaved rounds of the same trial, per request "
                       "stream; solid: mixed batches (each row its own adapter), dashed: one batch per adapter with "
                       "set_adapter between, dotted: the adapter merged into the weights. The absolute figures are "
                       "in the records (`<mode>_<stream>_ms_p50`, `base_ms_p50`).")


def throughput_vs_k(ok: pd.DataFrame, folder: Path):
    return _per_stream(ok, "rps", "requests/s", "requests per second, × the base alone (log)", folder,
                       "serving_throughput_vs_k", "Serving throughput vs K",
                       "Requests answered per second (median over rounds) as a multiple of the base model alone "
                       "timed in the same rounds, per request stream and serving mode. The absolute figures are in "
                       "the records (`<mode>_<stream>_rps`, `base_rps`).")


def memory_vs_k(ok: pd.DataFrame, folder: Path):
    from matplotlib.lines import Line2D

    models = list(dict.fromkeys(ok["model"]))
    fig, axes = grid(len(models))
    colours = _colours(ok["method"])
    for ax, model in zip(axes, models):
        rows = ok[ok["model"] == model]
        hidden = []
        for method, colour in colours.items():
            line = rows[rows["method"] == method]
            shown = line[line["mem_adapters_bytes"] > 0]
            hidden += [f"{method} K={k}" for k in line.loc[line["mem_adapters_bytes"] <= 0, "serve_k"]]
            ax.plot(shown["serve_k"], shown["mem_adapters_bytes"] / 2**20, "-o", markersize=4, color=colour)
        copies = rows.groupby("serve_k")[["copies_mem_bytes", "copies_measured"]].median().dropna()
        if len(copies):
            measured = copies["copies_measured"] >= copies.index
            ax.plot(copies.index, copies["copies_mem_bytes"] / 2**20, "--", color="0.2")
            ax.scatter(copies.index[measured], copies.loc[measured, "copies_mem_bytes"] / 2**20, color="0.2", zorder=3)
            ax.scatter(copies.index[~measured], copies.loc[~measured, "copies_mem_bytes"] / 2**20, facecolor="white",
                       edgecolor="0.2", zorder=3)
        _k_axis(ax, rows["serve_k"])
        _plain_log(ax)
        ax.set_ylabel("memory added (MiB, log)")
        ax.set_title(model)
        na_note(ax, [f"{h} (below the page noise)" for h in hidden])
    extra = [Line2D([], [], color="0.2", linestyle="--", marker="o", label="K full copies, measured"),
             Line2D([], [], color="0.2", linestyle="--", marker="o", markerfacecolor="white",
                    label="K full copies, extrapolated")]
    fig.legend(handles=[Line2D([], [], color=c, marker="o", label=m) for m, c in colours.items()] + extra,
               loc="upper left", bbox_to_anchor=(1.0, 0.93), frameon=False)
    title = "Serving memory vs K"
    caption = ("Memory the K resident adapters add to the resident base (process RSS on CPU, allocator on GPU, "
               "measured after loading them), against K full copies of the fine-tuned model: filled points "
               "measured, hollow ones extrapolated from the copies that fit the memory budget.")
    return Plot("serving_memory_vs_k", title, caption, save(fig, folder, "serving_memory_vs_k", title))


def swap_cost(ok: pd.DataFrame, folder: Path):
    top = ok[ok["serve_k"] == ok.groupby("model")["serve_k"].transform("max")]
    models = list(dict.fromkeys(top["model"]))
    fig, axes = grid(len(models))
    width = 0.8 / len(SWAPS)
    for ax, model in zip(axes, models):
        rows = top[top["model"] == model].sort_values("method")
        x = np.arange(len(rows))
        missing, lowest, highest = {}, np.inf, 0.0
        for index, (kind, label) in enumerate(SWAPS.items()):
            values = rows[f"swap_{kind}_ms_p50"] if f"swap_{kind}_ms_p50" in rows else pd.Series(np.nan, rows.index)
            bars = ax.bar(x + (index - 1) * width, values, width, label=label, color=SWAP_COLOURS[index])
            ax.bar_label(bars, labels=["" if pd.isna(v) else f"{v:.2g}" for v in values], fontsize=7, padding=2)
            gaps = [m for m, v in zip(rows["method"], values) if pd.isna(v)]
            if gaps:
                missing[label] = gaps
            if values.notna().any():
                lowest, highest = min(lowest, values.min()), max(highest, values.max())
        rotate_ticks(ax, x, list(rows["method"]))
        _plain_log(ax)
        if np.isfinite(lowest):
            ax.set_ylim(lowest / 3, highest * 3)  # the shortest bar stands clear of the axis, labels of the tallest fit
        ax.set_ylabel("p50 per switch (ms, log)")
        ax.set_title(f"{model}, K={int(rows['serve_k'].max())}")
        if missing:  # under the method names, where no bar can hide it
            ax.text(0.0, -0.3, "n/a: " + "; ".join(f"{kind}: {', '.join(gaps)}" for kind, gaps in missing.items()),
                    transform=ax.transAxes, fontsize=7, color="0.35", va="top", wrap=True)
    axes[0].figure.legend(*axes[0].get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(1.0, 0.93),
                          frameon=False)
    title = "Cost of switching the active adapter"
    caption = ("Median time to switch between requests to another adapter: set_adapter with all K resident, "
               "peft's in-place hot-swap from disk (LoRA; one adapter resident), and unmerge + merge of the next. "
               "n/a: the method cannot switch that way.")
    return Plot("serving_swap_cost", title, caption, save(fig, folder, "serving_swap_cost", title))


def _mib(value) -> str:
    if pd.isna(value):
        return "n/a"
    return f"{value / 2**20:,.1f} MiB" if abs(value) < 2**30 else f"{value / 2**30:,.2f} GiB"


def sentences(ok: pd.DataFrame) -> list[str]:
    """One per model: the largest K of LoRA (else the first method) against one task and against K full copies.
    Latency is taken relative to the base model timed in the same rounds, as the trials of different K ran at
    different times on a machine whose load may have changed between them."""
    lines = []
    for model, rows in ok.groupby("model", sort=False):
        method = "lora" if "lora" in set(rows["method"]) else sorted(rows["method"])[0]
        line = rows[rows["method"] == method].set_index("serve_k").sort_index()
        k = int(line.index.max())
        if k == 1 or 1 not in line.index:
            continue
        mode = "mixed" if pd.notna(line.get("mixed_uniform_ms_p50", pd.Series(np.nan)).get(k)) else "single"
        # as a multiple of the base alone answering the same windows in turn, so that a machine that ran slower
        # during one trial (or one stream) than another cancels out, then in ms of the K-task trial's base
        base = base_of(line, "uniform", "ms_p50")
        relative = line[f"{mode}_uniform_ms_p50"] / base
        extra_ms = (relative[k] - relative[1]) * base[k]
        extra_mem = line.loc[k, "mem_adapters_bytes"] - line.loc[1, "mem_adapters_bytes"]
        copies = _copies_text(line.loc[k])
        # a K-task trial that answered faster than the one-task trial is noise between trials, not a saving
        none = " (no added latency measurable: faster than one task in these rounds)" if extra_ms <= 0 else ""
        lines.append(f"{model}: serving {k} tasks with {method} costs {_mib(extra_mem)} and {extra_ms:+.1f} ms per "
                     f"request (p50 relative to the base alone in the same rounds, uniform requests, {mode} batches) "
                     f"more than one task{none}; {k} full copies would cost {copies}.")
    return lines


def _copies_text(row) -> str:
    measured = row.get("copies_measured")
    if pd.isna(row.get("copies_mem_bytes")):
        return "n/a (not measured)"
    how = "measured" if measured >= row.name else f"extrapolated from {int(measured)} loaded copies"
    return f"{_mib(row['copies_mem_bytes'])} of memory ({how})"


PLOTS = (latency_vs_k, throughput_vs_k, memory_vs_k, swap_cost)


def section(source, out: Path) -> list:
    """The report blocks of the serving section (empty where `source`, a folder, a table file or the table read
    from either, holds no serving record); plots are written to out/plots/."""
    trials = serving_trials(source)
    if trials.empty:
        return []
    blocks = [Block("heading", "Serving K tasks", anchor="serving")]
    ok = _ok(trials)
    if not ok.empty:
        blocks.append(Block("list", sentences(ok)))
        for draw in PLOTS:
            plot = draw(ok, Path(out) / "plots")
            blocks.append(Block("plot", plot, tuple((f.suffix[1:].upper(), f.relative_to(out)) for f in plot.files)))
    not_ok = _not_ok(trials)
    if not_ok:
        blocks += [Block("text", "Failed and skipped serving trials:"), Block("list", not_ok)]
    return blocks


def _not_ok(trials: pd.DataFrame) -> list[str]:
    """A line per model x method x status x reason, with the K it happened at."""
    rows = trials[trials["status"] != "ok"]
    groups = rows.groupby(["model", "method", "status", "error_message"], sort=False, dropna=False)["serve_k"]
    return [f"{method} on {model} (K={', '.join(str(k) for k in sorted(set(ks)))}): {status} ({message})"
            for (model, method, status, message), ks in groups]


def main(argv: list[str]) -> None:
    """Write the serving plots, report.md and report.html (the section alone) for a folder of serving records."""
    source = Path(argv[0])
    if not source.exists():
        raise SystemExit(f"peft-bench-serve report: no sweep folder or trials table at {source}")
    out = Path(argv[1]) if len(argv) > 1 else Path("reports") / source.name
    blocks = section(source, out)
    if not blocks:
        raise SystemExit(f"peft-bench-serve report: no serving record under {source}")
    markdown, html = write(out, f"Serving: {source.name}", blocks, ())
    print(f"peft-bench-serve report: {html}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
