"""The metric catalogue now lives in bench/results/metrics.py; these names stay importable from here until every
report module imports them from there."""

from bench.methods import FAMILIES  # noqa: F401 (full, selective, reparameterization, adapter, soft-prompt)
from bench.results.metrics import (  # noqa: F401
    MEMORY_PARTS, METRICS, MIB, NA, QUALITY_LONG, QUALITY_METRICS, QUALITY_NAMES, Metric, human_bytes, human_params,
    is_na, number,
)
