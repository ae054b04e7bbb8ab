"""``r2router eval DATASET``: cross-validate R2-Router against the baselines on a dataset.

Prints the results table (rows: methods; columns: accuracy, cost per 1K
queries, arena score, AUDC, peak quality, QNC) and writes the deferral curves
as a PNG and every number as JSON and CSV into --out.

DATASET is ``routerarena`` (RouterArena sub_10 cached results),
``alpacaeval-length`` (AlpacaEval length modes as budgets), ``synthetic``
(a generated pool, labelled SYNTHETIC) or the path of a long-format file.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.errors import ConfigError
from r2router_core.evaluation.dataset import RoutingDataset

__all__ = ["add_parser", "embed_for_eval", "load_named_dataset", "run"]

logger = logging.getLogger(__name__)

NAMED_DATASETS = ("routerarena", "alpacaeval-length", "synthetic")


def add_dataset_arguments(p: argparse.ArgumentParser, *, required: bool = True, embedder: str = "minilm") -> None:
    """DATASET and the options that say where its data and embeddings come from."""
    p.add_argument(
        "dataset",
        metavar="DATASET",
        nargs=None if required else "?",
        help=f"one of {', '.join(NAMED_DATASETS)}, a long-format file (CSV/JSONL) or an R2-Bench *_judge.csv directory",
    )
    p.add_argument("--data-dir", help="directory of the public data files (default: $R2ROUTER_DATA_DIR or the cache)")
    p.add_argument("--embedder", default=embedder, help=f"embedder id or path (default: {embedder})")
    p.add_argument("--cache-dir", help="embedding cache directory (default: the library's cache)")
    p.add_argument("--n-queries", type=int, default=1000, help="queries of the synthetic pool (default: 1000)")


def add_parser(sub: Any) -> None:
    """Register the command."""
    p = sub.add_parser(
        "eval",
        help="cross-validate R2-Router and the baselines on a dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataset_arguments(p)
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds and of random routing (default: 0)")
    p.add_argument("--k", type=int, default=80, help="neighbours of the kNN routers (default: 80)")
    p.add_argument(
        "--target",
        default="arena",
        help="what each fold's operating lambda is calibrated for: arena, cost=USD_PER_1K or quality=Q "
        "(default: arena)",
    )
    p.add_argument("--out", default="eval_results", help="directory for the PNG, JSON and CSV (default: eval_results)")
    p.add_argument(
        "--export-routerarena",
        metavar="FILE",
        help="also write R2-Router's held-out choices as a RouterArena prediction file (routerarena only)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def load_named_dataset(
    spec: str, *, data_dir: str | None = None, n_queries: int = 1000, seed: int = 0
) -> tuple[RoutingDataset, NDArray[np.float32] | None]:
    """A dataset by CLI name or path, with its embeddings when it comes with them (synthetic).

    Raises:
        ConfigError: Neither a known name nor an existing file.
    """
    from r2router_core.evaluation import datasets

    if spec == "synthetic":
        return datasets.make_synthetic_pool(n_queries, seed=seed)
    if spec == "routerarena":
        return datasets.load_routerarena(data_dir), None
    if spec == "alpacaeval-length":
        return datasets.load_alpacaeval_length(data_dir), None
    if Path(spec).exists():
        return datasets.load_long_format(spec), None
    raise ConfigError(
        f"unknown dataset {spec!r}; use one of {list(NAMED_DATASETS)}, the path of a long-format file "
        "or an R2-Bench *_judge.csv directory"
    )


def embed_for_eval(
    dataset: RoutingDataset, spec: str, *, cache_dir: str | None = None, progress: bool = False
) -> tuple[NDArray[np.float32], str]:
    """Embed a dataset's prompts (cached on disk); returns (embeddings (N, D), embedder id)."""
    from r2router_core.embedders import load_embedder
    from r2router_core.evaluation.datasets import embed_dataset

    embedder = load_embedder(spec, cache_size=0)
    start = time.perf_counter()
    emb = embed_dataset(dataset, embedder, cache_dir=cache_dir, progress=progress)
    logger.info("embedded %d prompts with %s in %.1f s", dataset.n_queries, embedder.id, time.perf_counter() - start)
    return np.asarray(emb, dtype=np.float32), embedder.id


def dataset_and_embeddings(args: argparse.Namespace) -> tuple[RoutingDataset, NDArray[np.float32], str]:
    """Load DATASET and embed it as the arguments say."""
    dataset, emb = load_named_dataset(
        args.dataset, data_dir=args.data_dir, n_queries=args.n_queries, seed=getattr(args, "seed", 0)
    )
    if emb is not None:
        return dataset, emb, "synthetic ground-truth vectors"
    emb, embedder_id = embed_for_eval(dataset, args.embedder, cache_dir=args.cache_dir, progress=not args.quiet)
    return dataset, emb, embedder_id


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write the files."""
    from r2router_core.evaluation.runner import evaluate, write_results

    if args.export_routerarena and args.dataset != "routerarena":
        raise ConfigError("--export-routerarena needs DATASET routerarena (the file holds RouterArena's answers)")
    dataset, emb, embedder_id = dataset_and_embeddings(args)
    start = time.perf_counter()
    result = evaluate(
        dataset,
        emb,
        n_folds=args.folds,
        seed=args.seed,
        k=args.k,
        target=args.target,
        embedder=embedder_id,
        progress=not args.quiet,
    )
    print(result.table())
    paths = write_results(result, args.out)
    print(f"\n{time.perf_counter() - start:.1f} s; wrote " + ", ".join(str(p) for p in paths.values()))
    if args.export_routerarena:
        print(f"wrote {_export(args, dataset, emb, result)}")
    return 0


def _export(args: argparse.Namespace, dataset: RoutingDataset, emb: NDArray[np.float32], result: Any) -> Path:
    from r2router_core.evaluation.baselines import RouterMethod
    from r2router_core.evaluation.datasets import routerarena_dir
    from r2router_core.evaluation.export import (
        load_cached_results,
        routerarena_predictions,
        write_routerarena_predictions,
    )
    from r2router_core.evaluation.protocol import complete_queries
    from r2router_core.evaluation.runner import held_out_choices

    data, rows = complete_queries(dataset)
    row = result.method("R2-Router")
    arms = held_out_choices(
        data, emb[rows], RouterMethod(k=args.k), row.fold_lambdas, n_folds=args.folds, seed=args.seed
    )
    entries = routerarena_predictions(data, arms, load_cached_results(routerarena_dir(args.data_dir)))
    return write_routerarena_predictions(args.export_routerarena, entries)
