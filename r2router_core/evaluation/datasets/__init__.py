"""Datasets: loaders that turn public routing data into a :class:`RoutingDataset`.

* :func:`make_synthetic_pool` -- generated data with a known optimum (labelled synthetic);
* :func:`load_routerarena` -- RouterArena cached results (one JSONL per model);
* :func:`load_alpacaeval_length` -- AlpacaEval length variants, each (model, length mode) an arm;
* :func:`load_long_format` -- your own outcomes, one row per (query, model, budget), CSV or JSONL;
* :func:`load_r2bench_judge_dir` -- R2-Bench's ``<budget>_judge.csv`` files;
* :func:`load_routerbench` -- RouterBench's wide layout (``<model>`` and ``<model>|total_cost`` columns);
* :func:`fetch_routerarena`, :func:`fetch_alpacaeval_length` -- find the files locally or download them;
* :func:`embed_dataset` -- embed prompts through an on-disk cache keyed by (embedder id, text hash).
"""

from r2router_core.evaluation.datasets.alpacaeval import ALPACAEVAL_MODELS, LENGTH_MODES, load_alpacaeval_length
from r2router_core.evaluation.datasets.embedding_cache import embed_dataset, embedding_cache_dir
from r2router_core.evaluation.datasets.fetch import (
    CACHE_DIR_ENV,
    DATA_DIR_ENV,
    alpacaeval_dir,
    default_cache_dir,
    fetch_alpacaeval_length,
    fetch_routerarena,
    routerarena_dir,
)
from r2router_core.evaluation.datasets.long_format import (
    COST_TOLERANCE,
    load_long_format,
    load_r2bench_judge_dir,
    load_routerbench,
    parse_budget,
)
from r2router_core.evaluation.datasets.routerarena import load_routerarena
from r2router_core.evaluation.datasets.synthetic import (
    DEFAULT_SYNTHETIC_MODELS,
    make_synthetic_pool,
    synthetic_expected,
    synthetic_optimal_arms,
    synthetic_optimum,
)
from r2router_core.evaluation.datasets.tokens import TOKENIZERS, count_tokens

__all__ = [
    "ALPACAEVAL_MODELS",
    "CACHE_DIR_ENV",
    "COST_TOLERANCE",
    "DATA_DIR_ENV",
    "DEFAULT_SYNTHETIC_MODELS",
    "LENGTH_MODES",
    "TOKENIZERS",
    "alpacaeval_dir",
    "count_tokens",
    "default_cache_dir",
    "embed_dataset",
    "embedding_cache_dir",
    "fetch_alpacaeval_length",
    "fetch_routerarena",
    "load_alpacaeval_length",
    "load_long_format",
    "load_r2bench_judge_dir",
    "load_routerarena",
    "load_routerbench",
    "make_synthetic_pool",
    "parse_budget",
    "routerarena_dir",
    "synthetic_expected",
    "synthetic_optimal_arms",
    "synthetic_optimum",
]
