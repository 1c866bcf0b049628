"""The seed taxonomy of fine-tuning methods: each method belongs to one family, and every table and plot lists
families in this order. It sits below methods, the report and the CLIs, which all read it."""

from __future__ import annotations

FAMILIES = ("full", "selective", "reparameterization", "adapter", "soft-prompt")


def family_rank(family: str) -> int:
    """Position in the taxonomy; a family outside it (an old record's) sorts after every known one."""
    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


def ordered_families(families) -> list[str]:
    """The distinct families given, known ones in taxonomy order, then unknown ones alphabetically."""
    present = set(families)
    return [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))
