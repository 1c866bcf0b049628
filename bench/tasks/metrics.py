"""Task metrics behind evaluate's Metric interface, computed locally, with per-item scores and a 95% interval.

`evaluate.load("accuracy")` fetches its script from the Hub and fails offline, so the harness carries its own
modules (scikit-learn and rouge-score inside); any other name is passed to evaluate.load for users with network.

Every evaluation also keeps one score per evaluated item, in the order of the held-out rows (fixed across trials
and seeds), so two methods can be compared paired on the same items: correct 1/0 for classification, ROUGE-L F
for generation (or the primary metric's own per-item score where it is a mean over items).
"""

from __future__ import annotations

import functools

from bench.common import stats

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")
MEAN_OF_ITEMS = {"accuracy", *ROUGE_KEYS}  # metrics that are the plain mean of a per-item score
ITEM_DIGITS = 4  # per-item ROUGE kept to 4 decimals: items.json stays small, means move by < 1e-4


def rouge_items(predictions, references) -> dict[str, list[float]]:
    """ROUGE-1/2/L F-measure of each prediction against its reference (rouge-score, stemmed)."""
    from rouge_score import rouge_scorer, tokenizers

    # rouge-score's own default tokenizer, passed in: left to choose it, the scorer logs "Using default tokenizer"
    # through absl, whose first log call installs a handler on the root logger (logging.basicConfig) bound to
    # whatever sys.stderr is at that moment, so every library's log lines reached the console from then on.
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), tokenizer=tokenizers.DefaultTokenizer(use_stemmer=True))
    scores = [scorer.score(str(ref), str(pred)) for ref, pred in zip(references, predictions)]
    return {key: [s[key].fmeasure for s in scores] for key in ROUGE_KEYS}


@functools.cache
def _local_metrics():
    import datasets
    import evaluate

    class Classification(evaluate.Metric):
        """accuracy and macro-F1 over integer class ids."""

        def _info(self):
            value = datasets.Value("int64")
            features = datasets.Features({"predictions": value, "references": value})
            return evaluate.MetricInfo(description=self.__doc__, citation="", inputs_description="", features=features)

        def _compute(self, predictions, references):
            from sklearn.metrics import accuracy_score, f1_score

            return {
                "accuracy": float(accuracy_score(references, predictions)),
                "f1_macro": float(f1_score(references, predictions, average="macro", zero_division=0)),
            }

    class Rouge(evaluate.Metric):
        """ROUGE-1/2/L F-measure (rouge-score, stemmed), averaged over examples."""

        def _info(self):
            value = datasets.Value("string")
            features = datasets.Features({"predictions": value, "references": value})
            return evaluate.MetricInfo(description=self.__doc__, citation="", inputs_description="", features=features)

        def _compute(self, predictions, references):
            items = rouge_items(predictions, references)
            return {key: sum(values) / max(len(values), 1) for key, values in items.items()}

    return {"accuracy": Classification, "f1_macro": Classification, "rouge1": Rouge, "rouge2": Rouge, "rougeL": Rouge}


def compute(names: list[str], predictions, references) -> dict[str, float]:
    """Every metric in `names`; local modules first, Hub metric names through evaluate.load."""
    local = _local_metrics()
    results: dict[str, float] = {}
    for module_cls in {local[n] for n in names if n in local}:
        results.update(module_cls().compute(predictions=predictions, references=references))
    for name in (n for n in names if n not in local):
        import evaluate

        results.update(evaluate.load(name).compute(predictions=predictions, references=references))
    return {name: float(results[name]) for name in names if name in results}


def item_scores(kind: str, primary: str, predictions, references) -> tuple[str, list[float]]:
    """(metric, one score per item): the primary metric's own where it is a mean over items, else correct 1/0
    (classification) or ROUGE-L (generation)."""
    metric = primary if primary in MEAN_OF_ITEMS else ("accuracy" if kind == "classification" else "rougeL")
    if metric == "accuracy":
        return metric, [int(p == r) for p, r in zip(predictions, references)]
    return metric, [round(v, ITEM_DIGITS) for v in rouge_items(predictions, references)[metric]]


def interval(primary: str, items_metric: str, items: list[float], predictions=None,
             references=None) -> tuple[float | None, float | None]:
    """95% interval of the primary metric over the evaluated items: Wilson for accuracy, a seeded percentile
    bootstrap of the mean for the other per-item means, a bootstrap of the recomputed F1 over resampled
    (prediction, label) pairs for macro-F1; None (n/a) for a Hub metric, which the harness cannot resample."""

    if primary == "f1_macro" and predictions is not None and len(predictions):
        return stats.bootstrap_macro_f1_ci(predictions, references)
    if primary != items_metric or not items:
        return None, None
    if primary == "accuracy":
        return stats.wilson_interval(sum(items), len(items))
    return stats.bootstrap_mean_ci(items)


def scored(kind: str, names: list[str], primary: str, predictions, references) -> dict:
    """The task's metrics, `quality_ci_low`/`quality_ci_high` (95%) and `n_eval`, and under `items` the per-item
    scores that the trial keeps beside its record, not in it (their metric under `quality_items_metric`)."""
    result: dict = compute(names, predictions, references)
    items_metric, items = item_scores(kind, primary, predictions, references)
    labels = (predictions, references) if kind == "classification" else (None, None)
    result["quality_ci_low"], result["quality_ci_high"] = interval(primary, items_metric, items, *labels)
    result["n_eval"] = len(items)
    result["quality_items_metric"] = items_metric
    result["items"] = items
    return result
