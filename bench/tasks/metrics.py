"""Task metrics behind evaluate's Metric interface, computed locally.

`evaluate.load("accuracy")` fetches its script from the Hub and fails offline, so the harness carries its own
modules (scikit-learn and rouge-score inside); any other name is passed to evaluate.load for users with network.
"""

from __future__ import annotations

import functools


@functools.cache
def _local_metrics():
    import datasets
    import evaluate

    class Classification(evaluate.Metric):
        """accuracy and macro-F1 over integer class ids."""

        def _info(self):
            features = datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")})
            return evaluate.MetricInfo(description=self.__doc__, citation="", inputs_description="", features=features)

        def _compute(self, predictions, references):
            from sklearn.metrics import accuracy_score, f1_score

            return {
                "accuracy": float(accuracy_score(references, predictions)),
                "f1_macro": float(f1_score(references, predictions, average="macro")),
            }

    class Rouge(evaluate.Metric):
        """ROUGE-1/2/L F-measure (rouge-score, stemmed), averaged over examples."""

        def _info(self):
            features = datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")})
            return evaluate.MetricInfo(description=self.__doc__, citation="", inputs_description="", features=features)

        def _compute(self, predictions, references):
            from rouge_score import rouge_scorer

            scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
            scores = [scorer.score(ref, pred) for ref, pred in zip(references, predictions)]
            return {key: sum(s[key].fmeasure for s in scores) / max(len(scores), 1) for key in ("rouge1", "rouge2", "rougeL")}

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
