"""Small helpers for the methods text: one shape for a sentence and the English joins."""

from __future__ import annotations

from collections.abc import Sequence

#: A sentence of the methods text and the citation keys it rests on.
Sentence = tuple[str, tuple[str, ...]]


def join(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + f" and {items[-1]}"


def dims(values: Sequence[float], fmt: str = "g") -> str:
    """'2x2x4' from (2.0, 2.0, 4.0)."""
    return "x".join(f"{v:{fmt}}" for v in values)
