"""Pareto fronts: the points no other point beats on every objective at once.

A point dominates another when it is at least as good on every objective and strictly better on one. Points with a
missing objective are neither on the front nor allowed to dominate (n/a is unknown, not good or bad).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def pareto_mask(frame: pd.DataFrame, objectives: dict[str, str]) -> pd.Series:
    """True for the non-dominated rows; objectives maps column -> "max" or "min"."""
    values = np.column_stack([frame[c].to_numpy(float) * (1.0 if how == "max" else -1.0)
                              for c, how in objectives.items()]) if len(frame) else np.empty((0, len(objectives)))
    complete = ~np.isnan(values).any(axis=1)
    mask = complete.copy()
    for i in np.flatnonzero(complete):
        others = values[complete]
        dominated = (others >= values[i]).all(axis=1) & (others > values[i]).any(axis=1)
        mask[i] = not dominated.any()
    return pd.Series(mask, index=frame.index)


def front_line(frame: pd.DataFrame, x: str, y: str, x_better: str, y_better: str = "max") -> pd.DataFrame:
    """The non-dominated points of two objectives, sorted along x, ready to draw as a step line."""
    front = frame[pareto_mask(frame, {x: x_better, y: y_better})]
    return front.sort_values(x)
