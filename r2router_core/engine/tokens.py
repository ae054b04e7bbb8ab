"""How many tokens a prompt has: the input side of every decision's cost.

:func:`estimate_tokens` is the documented fallback estimate, used when no real
tokenizer is available offline: ``max(1, int(1.3 * words))`` (the R2-Router
research release's own ``route_text`` estimate). The router prefers its
embedder's own tokenizer (:meth:`R2Router.count_tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["WORDS_TO_TOKENS", "estimate_tokens"]

WORDS_TO_TOKENS = 1.3
"""Tokens per whitespace-separated word in the fallback estimate (the research release's factor)."""


def estimate_tokens(texts: Sequence[str]) -> list[int]:
    """The fallback estimate of each text's token count: ``max(1, int(1.3 * words))``."""
    return [max(1, int(WORDS_TO_TOKENS * len(text.split()))) for text in texts]
