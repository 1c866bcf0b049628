"""General English text the task never saw: the pydoc topics that ship with every Python (pydoc_data)."""

from __future__ import annotations


def general_text_chunks(count: int, min_chars: int = 400) -> list[str]:
    from pydoc_data.topics import topics

    chunks = [text.strip() for _, text in sorted(topics.items()) if len(text.strip()) >= min_chars]
    return chunks[:count]


def paragraph_pairs(count: int) -> list[tuple[str, str]]:
    """(first paragraph, second paragraph) of pydoc topics: a retrieval probe for tasks without their own pairs."""
    pairs = []
    for text in general_text_chunks(10 * count):
        paragraphs = [p.strip() for p in text.split("\n\n") if len(p.strip()) > 80]
        if len(paragraphs) >= 2:
            pairs.append((paragraphs[0], paragraphs[1]))
    return pairs[:count]
