"""Did-you-mean hints for messages: the closest known names to a word.

A leaf: the spec, the metric catalog, loading and the cleanup's config all
name the nearest valid choice when a name is wrong, the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str], count: int = 3) -> list[str]:
    """Up to ``count`` candidates that look like ``word``, best first."""
    return difflib.get_close_matches(word, sorted(set(candidates)), n=count, cutoff=0.5)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``did you mean 'a' or 'b'?``, or an empty string when nothing is close."""
    matches = closest(word, candidates)
    if matches:
        return "did you mean " + " or ".join(repr(m) for m in matches) + "?"
    return ""
