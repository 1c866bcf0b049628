"""Moved to bench.common.stats (statistics sit below everything that reports a figure); this name stays only until
the task and probe modules that still read it here import it from there."""

from bench.common.stats import (  # noqa: F401
    CONFIDENCE,
    N_RESAMPLES,
    SEED,
    bootstrap_macro_f1_ci,
    bootstrap_mean_ci,
    mean_over_resampled_seeds,
    percentile_interval,
    tie_set,
    wilson_interval,
)
