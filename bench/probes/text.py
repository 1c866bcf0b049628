"""General English text the task never saw: the pydoc topics that ship with every Python (pydoc_data).

The topics differ between Python versions, so a cached base score is keyed by the Python version. Python 3.11's
has 72 distinct topics of at least 400 characters (464k characters): 1,711 windows of 64 SmolLM2 tokens (842 of
128), 1,939 of 64 MiniLM tokens, and 737 pairs of consecutive paragraphs; enough for the default 256 items.
"""

from __future__ import annotations

from itertools import chain, zip_longest


def general_text_chunks(count: int | None = None, min_chars: int = 400) -> list[str]:
    from pydoc_data.topics import topics

    chunks = [text.strip() for _, text in sorted(topics.items()) if len(text.strip()) >= min_chars]
    return list(dict.fromkeys(chunks))[:count]  # some topics share one text under two names


def _round_robin(groups: list[list], count: int) -> list:
    """The first item of every group, then the second of every group, ...: items spread over as many groups
    (topics) as the count allows, so the items are as independent as the text permits."""
    items = [item for item in chain.from_iterable(zip_longest(*groups)) if item is not None]
    return items[:count]


def leading_ids(tokenizer) -> list[int]:
    """The ids the tokenizer puts before a text's own: BOS where it adds one (Llama, Gemma), none where it does not
    (SmolLM2, GPT-2)."""
    plain = tokenizer("a", add_special_tokens=False).input_ids
    full = tokenizer("a").input_ids
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start]
    return []


def general_text_windows(tokenizer, count: int, length: int) -> list[list[int]]:
    """`count` non-overlapping windows of `length` token ids from the topics, spread over topics; equal lengths, so
    they batch without padding and every text weighs the same. Each window starts as the tokenizer starts a text
    (BOS where it adds one): without it Gemma 3 270M read perplexity 993 on 8 windows, with it 59."""
    lead = leading_ids(tokenizer)
    step = length - len(lead)  # the text's own tokens per window
    windows = []
    for text in general_text_chunks():
        ids = tokenizer(text, add_special_tokens=False).input_ids
        windows.append([lead + ids[start:start + step] for start in range(0, len(ids) - step + 1, step)])
    return _round_robin(windows, count)


def paragraph_pairs(count: int) -> list[tuple[str, str]]:
    """(paragraph, next paragraph) of the topics, consecutive pairs that share no paragraph, spread over topics: a
    retrieval probe for tasks without their own pairs."""
    per_topic = []
    for text in general_text_chunks():
        paragraphs = [p.strip() for p in text.split("\n\n") if len(p.strip()) > 80]
        per_topic.append([(paragraphs[i], paragraphs[i + 1]) for i in range(0, len(paragraphs) - 1, 2)])
    return _round_robin(per_topic, count)
