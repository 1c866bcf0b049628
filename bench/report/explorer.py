"""The interactive trade-off explorer inside report.html: pick x and y from the metric catalogue, filter by model,
task, family and method, hover a point for its figures and config; error bars, and the Pareto front recomputed for
the chosen axes and filters (per model × task: quality of two tasks is not comparable).

Plotly, not Vega-Lite through altair: plotly's Python package ships plotly.min.js itself, so the report inlines it
offline with no extra tool, while altair needs vl-convert (a bundled JavaScript runtime) to inline Vega; and the
front must be recomputed for whatever axes and filters are chosen, a few lines of JavaScript around
Plotly.react but a chain of transforms in Vega-Lite. The cost is size: plotly.min.js is ~4.8 MB of the page.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from bench.common.families import ordered_families
from bench.report.plots.style import LOG_SCALE, bytes_unit, colour
from bench.report.tables import PROBE_UNITS
from bench.results.metrics import METRICS, QUALITY_LONG, QUALITY_METRICS

DEFAULT_X, DEFAULT_Y = "peak_mem_bytes", "quality"
PLOT_ID = "explorer-plot"


def _axis(column: str, values: pd.Series) -> dict:
    """How one metric is shown: its label with the display unit and the factor that turns raw values into it."""
    metric = METRICS[column]
    scale, unit = (bytes_unit(values) if metric.kind == "bytes" else
                   (0.01, "%") if metric.kind == "fraction" else (1.0, metric.unit))
    return {"column": column, "label": f"{metric.label} ({unit})" if unit else metric.label, "scale": scale,
            "better": metric.better, "log": column in LOG_SCALE, "help": metric.help}


def _number(value, scale: float = 1.0):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value) / scale


def _config(trials: pd.DataFrame, row: pd.Series) -> str:
    """The config that tells this variant apart: method params, learning rate, steps (as the first seed ran it)."""
    match = trials[(trials["model"] == row["model"]) & (trials["task"] == row["task"]) &
                   (trials["label"] == row["label"]) & (trials["status"] == "ok")]
    if match.empty:
        return ""
    first = match.iloc[0]
    lr = "" if pd.isna(first["learning_rate"]) else f"lr {first['learning_rate']:g}"
    steps = "" if pd.isna(first["max_steps"]) else f"{int(first['max_steps'])} steps"
    return "; ".join(p for p in (first["method_params"] or "", lr, steps) if p and p != "{}")


def data(agg: pd.DataFrame, trials: pd.DataFrame) -> dict:
    """Everything the explorer draws, as plain JSON: the axes it offers and one point per model × task × variant."""
    columns = [c for c in METRICS if c not in QUALITY_METRICS and f"{c}_mean" in agg and agg[f"{c}_mean"].notna().any()]
    axes = {c: _axis(c, agg[f"{c}_mean"]) for c in columns}
    points = []
    for _, row in agg.iterrows():
        values, errors = {}, {}
        for column, axis in axes.items():
            scale = axis["scale"]
            mean = _number(row[f"{column}_mean"], scale)
            if mean is None:
                continue
            values[column] = mean
            low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
            if column in ("quality", "forgetting") and _number(low) is not None and _number(high) is not None:
                errors[column] = [max(0.0, mean - low / scale), max(0.0, high / scale - mean)]  # the 95% interval
            elif _number(row.get(f"{column}_std")) is not None and row.get(f"{column}_n", 0) > 1:
                errors[column] = [row[f"{column}_std"] / scale] * 2  # ± std over seeds
        tied = row.get("quality_tied") is True
        why, probe = row.get("unstable"), row.get("forgetting_probe")
        unstable = why if isinstance(why, str) and why else ""
        top = agg.loc[(agg["model"] == row["model"]) & (agg["task"] == row["task"]), "quality_mean"].max()
        metric = row["quality_metric"]
        points.append({"model": row["model"], "task": row["task"], "family": row["family"], "method": row["method"],
                       "label": row["label"], "seeds": int(row["n_seeds"]),
                       "items": _number(row.get("n_eval")), "metric": QUALITY_LONG.get(metric, metric or "quality"),
                       "tied": tied, "baseline": row.get("at_baseline") is True, "unstable": unstable,
                       "probe": PROBE_UNITS.get(probe, probe) if isinstance(probe, str) else "",
                       # the front counts every method tied at the top as equal in quality: the top's
                       "level": _number(top, axes["quality"]["scale"]) if tied and "quality" in axes else None,
                       "config": _config(trials, row), "v": values, "e": errors})
    families = ordered_families(agg["family"])
    palette = {f: "#{:02x}{:02x}{:02x}".format(*tuple(round(255 * c) for c in colour(f))) for f in families}
    return {"axes": axes, "points": points, "families": families, "palette": palette,
            "x": DEFAULT_X if DEFAULT_X in axes else next(iter(axes), None),
            "y": DEFAULT_Y if DEFAULT_Y in axes else next(iter(axes), None)}


CSS = """
.explorer{border:1px solid #ccd;border-radius:6px;padding:8px;margin:0.5em 0}
.explorer .controls{display:flex;flex-wrap:wrap;gap:6px 14px;font-size:0.82em;align-items:flex-start}
.explorer fieldset{border:1px solid #ddd;border-radius:4px;padding:2px 6px;margin:0;max-height:7.5em;overflow:auto}
.explorer legend{font-weight:600}.explorer label{white-space:nowrap;margin-right:6px;display:inline-block}
#explorer-plot{width:100%;height:560px}.explorer .status{font-size:0.8em;color:#555}
"""

APP_JS = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("explorer-data").textContent);
  var root = document.getElementById("explorer");
  var plot = document.getElementById("__PLOT__");
  var FILTERS = ["model", "task", "family", "method"];

  function unique(key) {
    var seen = [];
    D.points.forEach(function (p) { if (seen.indexOf(p[key]) < 0) seen.push(p[key]); });
    return key === "family" ? D.families.filter(function (f) { return seen.indexOf(f) >= 0; }) : seen;
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function axisSelect(name, chosen) {
    var label = el("label", {}, name + " ");
    var select = el("select", {id: "explorer-" + name});
    Object.keys(D.axes).forEach(function (c) {
      var option = el("option", {value: c}, D.axes[c].label);
      if (c === chosen) option.selected = true;
      select.appendChild(option);
    });
    var log = el("input", {type: "checkbox", id: "explorer-" + name + "-log"});
    label.appendChild(select);
    label.appendChild(log);
    label.appendChild(document.createTextNode(" log"));
    select.addEventListener("change", function () { log.checked = D.axes[select.value].log; draw(); });
    log.checked = D.axes[chosen].log;
    log.addEventListener("change", draw);
    return label;
  }
  function filterBox(key) {
    var box = el("fieldset", {"data-filter": key});
    box.appendChild(el("legend", {}, key));
    var values = unique(key);
    // Quality of two tasks is not comparable: the first model x task is shown until the reader adds others
    values.forEach(function (v, i) {
      var input = el("input", {type: "checkbox", value: v, "data-filter": key});
      input.checked = (key === "model" || key === "task") ? i === 0 : true;
      input.addEventListener("change", draw);
      var label = el("label");
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + v));
      box.appendChild(label);
    });
    return box;
  }
  var controls = el("div", {"class": "controls"});
  var axesBox = el("div");
  axesBox.appendChild(axisSelect("x", D.x));
  axesBox.appendChild(el("br"));
  axesBox.appendChild(axisSelect("y", D.y));
  controls.appendChild(axesBox);
  FILTERS.forEach(function (key) { controls.appendChild(filterBox(key)); });
  root.insertBefore(controls, plot);
  var status = el("p", {"class": "status", id: "explorer-status"});
  root.appendChild(status);

  function chosen(key) {
    var out = [];
    root.querySelectorAll("input[data-filter='" + key + "']").forEach(function (i) {
      if (i.checked) out.push(i.value);
    });
    return out;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "n/a";
    var a = Math.abs(v);
    return a >= 1000 ? v.toLocaleString("en", {maximumFractionDigits: 0}) : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
  }
  function level(p, c) {  // quality of a method tied at the top counts as the top's: ties are not ranked
    return c === "quality" && p.level !== null && p.level !== undefined ? p.level : p.v[c];
  }
  function dominated(p, q, x, y) {  // q at least as good on both axes and better on one
    var bx = D.axes[x].better === "min" ? -1 : 1, by = D.axes[y].better === "min" ? -1 : 1;
    var dx = bx * (level(q, x) - level(p, x)), dy = by * (level(q, y) - level(p, y));
    return dx >= 0 && dy >= 0 && (dx > 0 || dy > 0);
  }
  function front(points, x, y) {
    if (!D.axes[x].better || !D.axes[y].better) return [];
    points = points.filter(function (p) { return !p.unstable; });  // an unstable method is never on a front
    var out = points.filter(function (p) { return !points.some(function (q) { return dominated(p, q, x, y); }); });
    return out.sort(function (a, b) { return a.v[x] - b.v[x]; });
  }
  function hover(p, x, y) {
    var lines = ["<b>" + p.label + "</b> (" + p.family + ")", p.model + " / " + p.task + ", " + p.seeds + " seed(s)" +
                 (p.items ? ", " + p.items + " items" : "")];
    [x, y].concat(["quality"]).filter(function (c, i, a) { return a.indexOf(c) === i && p.v[c] !== undefined; })
      .forEach(function (c) {
        var e = p.e[c], text = D.axes[c].label + ": " + fmt(p.v[c]);
        if (e) text += (c === "quality" || c === "forgetting")
                       ? " [" + fmt(p.v[c] - e[0]) + ", " + fmt(p.v[c] + e[1]) + "]"
                       : " ± " + fmt(e[0]);
        lines.push(text);
      });
    if (p.probe && (x === "forgetting" || y === "forgetting")) lines.push("forgetting probe: " + p.probe);
    if (p.tied) lines.push("not shown worse than the best quality");
    if (p.unstable) lines.push("<b>unstable</b>: " + p.unstable + "; never on the front");
    if (p.baseline) lines.push("not shown above the task's trivial baseline");
    if (p.config) lines.push("config: " + p.config);
    return lines.join("<br>");
  }
  function draw() {
    var x = document.getElementById("explorer-x").value, y = document.getElementById("explorer-y").value;
    var keep = {};
    FILTERS.forEach(function (k) { keep[k] = chosen(k); });
    var shown = D.points.filter(function (p) {
      return FILTERS.every(function (k) { return keep[k].indexOf(p[k]) >= 0; }) &&
             p.v[x] !== undefined && p.v[y] !== undefined;
    });
    var traces = [];
    unique("family").forEach(function (family) {
      var ps = shown.filter(function (p) { return p.family === family; });
      if (!ps.length) return;
      function bars(c, side) { return ps.map(function (p) { return p.e[c] ? p.e[c][side] : 0; }); }
      traces.push({type: "scatter", mode: "markers+text", name: family, x: ps.map(function (p) { return p.v[x]; }),
        y: ps.map(function (p) { return p.v[y]; }),
        text: ps.map(function (p) { return p.unstable ? p.label + " (unstable)" : p.label; }),
        textposition: "top right", textfont: {size: 10, color: "#444"},
        hovertext: ps.map(function (p) { return hover(p, x, y); }), hoverinfo: "text",
        marker: {size: 10, color: D.palette[family], opacity: 0.9,
                 line: {width: ps.map(function (p) { return p.tied ? 2.5 : 0; }), color: "#333"}},
        error_x: {type: "data", symmetric: false, array: bars(x, 1), arrayminus: bars(x, 0), thickness: 1, width: 2},
        error_y: {type: "data", symmetric: false, array: bars(y, 1), arrayminus: bars(y, 0), thickness: 1, width: 2}});
    });
    var groups = {};
    shown.forEach(function (p) {
      (groups[p.model + " / " + p.task] = groups[p.model + " / " + p.task] || []).push(p);
    });
    var fronts = 0;
    Object.keys(groups).forEach(function (g) {
      var f = front(groups[g], x, y);
      fronts += f.length;
      if (f.length) traces.push({type: "scatter", mode: "lines", name: "Pareto front: " + g, hoverinfo: "skip",
        x: f.map(function (p) { return p.v[x]; }), y: f.map(function (p) { return p.v[y]; }),
        line: {dash: "dash", color: "#333", width: 1, shape: "hv"}});
    });
    var layout = {margin: {l: 60, r: 10, t: 36, b: 50}, hovermode: "closest", legend: {orientation: "v"},
      xaxis: {title: {text: D.axes[x].label},
              type: document.getElementById("explorer-x-log").checked ? "log" : "linear"},
      yaxis: {title: {text: D.axes[y].label},
              type: document.getElementById("explorer-y-log").checked ? "log" : "linear"}};
    Plotly.react(plot, traces, layout, {displaylogo: false, responsive: true});
    plot.setAttribute("data-points", String(shown.length));
    status.textContent = shown.length + " of " + D.points.length + " method variants shown; " + fronts +
      " on a Pareto front (per model × task, dashed; methods not shown worse than the best quality count as equal " +
      "in quality; unstable methods never on it). Ringed: not shown worse than the best quality. " +
      "Error bars: 95% interval for quality and forgetting, ± std over seeds otherwise.";
  }
  window.peftExplorer = {draw: draw};
  draw();
})();
"""


def fragment(agg: pd.DataFrame, trials: pd.DataFrame) -> tuple[str, str]:
    """(the explorer's HTML where it stands in the page, the scripts that go at the end of the body)."""
    from plotly.offline import get_plotlyjs

    payload = json.dumps(data(agg, trials), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    body = (f"<style>{CSS}</style><div class=\"explorer\" id=\"explorer\"><div id=\"{PLOT_ID}\"></div></div>"
            f"<script type=\"application/json\" id=\"explorer-data\">{payload}</script>")
    scripts = f"<script>{get_plotlyjs()}</script>\n<script>{APP_JS.replace('__PLOT__', PLOT_ID)}</script>"
    return body, scripts

