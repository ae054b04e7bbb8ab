"""``r2router eval --router DIR TEST``: score a trained router on a held-out file (run this before deploying).

Each TEST query is routed by the checkpoint at its own lambda and scored with the
TRUE outcome of the chosen arm; beside it the best single model chosen on the
router's own training data (what the router must beat), the best single model on
TEST (hindsight), the cheapest, random routing and the per-query oracle, with the
difference "router vs best single (chosen on train)" and its standard error.

``r2router eval DATASET`` (no --router): cross-validate R2-Router against the baselines on a dataset.

Prints the results table (rows: methods; columns: accuracy, cost per 1K
queries, arena score, AUDC, peak quality, QNC) and writes the deferral curves
as a PNG and every number as JSON and CSV into --out.

DATASET is ``routerarena`` (RouterArena sub_10 cached results),
``alpacaeval-length`` (AlpacaEval length modes as budgets), ``synthetic``
(a generated pool, labelled SYNTHETIC), or your own data in any form
``r2router train`` reads: a card-layout directory or a long-format file.

``--engine ray`` embeds the prompts on a pool of Ray actors (each loads the
embedder once; ``--ray-address`` joins a cluster), the same vectors as the
local default; the embedding cache is shared by both.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from r2router_core import PREDICTORS, ConfigError
from r2router_core.embedders import TRAINING_DEFAULT
from r2router_core.evaluation import RoutingDataset

if TYPE_CHECKING:
    from r2router_core.interop.routerarena import RouterArenaFiles

from r2router_integrations.cli.common import add_engine_arguments, embedding_engine
from r2router_integrations.cli.inputs import (
    DATA_DESCRIPTION,
    add_training_input_arguments,
    embed_training_input,
    resolve_training_input,
)

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Register the command."""
    p = sub.add_parser(
        "eval",
        help="score a trained router on a held-out file (--router DIR TEST), or cross-validate on a dataset",
        description=f"{__doc__}\n{DATA_DESCRIPTION.replace('DATA ', 'DATASET ', 1)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_training_input_arguments(p, metavar="DATASET", required=False, embedder="auto")
    p.add_argument(
        "--store",
        metavar="URL",
        help="instead of DATASET: estimate from the decision log alone (inverse propensity weighting) the mean "
        "quality --router would have had at each --lambda",
    )
    p.add_argument(
        "--router",
        help="a trained checkpoint directory: score it on the held-out DATASET (or, with --store, estimate it "
        "from the decision log)",
    )
    p.add_argument(
        "--predictor",
        choices=PREDICTORS,
        default="knn",
        help="predictor of the cross-validated routers (default: knn; auto = chosen by CV inside each training "
        "part, as train does)",
    )
    p.add_argument(
        "--lambda",
        dest="lambdas",
        type=float,
        action="append",
        help="with --store: a lambda to estimate (repeatable; default: the router's own)",
    )
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds and of random routing (default: 0)")
    p.add_argument("--k", type=int, default=80, help="neighbours of the kNN routers (default: 80)")
    p.add_argument(
        "--target",
        help="what each fold's operating lambda is calibrated for: arena, cost=USD_PER_1K or quality=Q "
        "(default: arena); with --router DIR TEST, what 'best single model' means (default: the target the "
        "router's lambda was calibrated for)",
    )
    p.add_argument("--out", default="eval_results", help="directory for the PNG, JSON and CSV (default: eval_results)")
    p.add_argument(
        "--export-routerarena",
        metavar="DIR",
        help="also write R2-Router's held-out choices as a RouterArena submission into DIR (a RouterArena "
        "checkout): router_inference/predictions/NAME.json and router_inference/config/NAME.json "
        "(routerarena only)",
    )
    p.add_argument(
        "--router-name",
        default="r2router",
        help="NAME of the RouterArena submission files (default: r2router)",
    )
    add_engine_arguments(p, "embed DATASET's prompts")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write the files."""
    from r2router_core.evaluation import evaluate, write_results

    if args.store is not None:
        return _off_policy(args)
    if args.router is not None:
        return _held_out(args)
    if args.dataset is None:
        raise ConfigError(
            "give DATASET, --router DIR TEST to score a trained router on a held-out file, "
            "or --store URL --router DIR for the off-policy estimate"
        )
    if args.embedder == "auto":
        args.embedder = TRAINING_DEFAULT
    if args.export_routerarena and args.dataset != "routerarena":
        raise ConfigError("--export-routerarena needs DATASET routerarena (the file holds RouterArena's answers)")
    inp = resolve_training_input(args)
    with embedding_engine(args, args.embedder) as engine:
        emb, embedder_id = embed_training_input(
            inp, args.embedder, cache_dir=args.cache_dir, progress=not args.quiet, engine=engine
        )
    dataset = inp.dataset
    start = time.perf_counter()
    result = evaluate(
        dataset,
        emb,
        n_folds=args.folds,
        seed=args.seed,
        k=args.k,
        target=args.target or "arena",
        embedder=embedder_id or "synthetic ground-truth vectors",
        progress=not args.quiet,
        predictor=args.predictor,
    )
    print(result.table())
    paths = write_results(result, args.out)
    print(f"\n{time.perf_counter() - start:.1f} s; wrote " + ", ".join(str(p) for p in paths.values()))
    if args.export_routerarena:
        files = _export(args, dataset, emb, result)
        print(f"wrote {files.predictions} and {files.config}")
    return 0


def _held_out(args: argparse.Namespace) -> int:
    """Score ``--router`` on the held-out DATASET: the true outcome of each chosen arm, beside the baselines."""
    from r2router_core import R2Router
    from r2router_core.evaluation import evaluate_router, results_stem, write_results

    if args.dataset is None:
        raise ConfigError(
            "--router DIR needs TEST: a held-out outcomes file the router was not trained on "
            "(or --store URL for the off-policy estimate from the decision log)"
        )
    for option, default in (("export_routerarena", None), ("predictor", "knn")):
        if getattr(args, option) != default:
            raise ConfigError(f"--{option.replace('_', '-')} applies to cross-validation, not to --router DIR TEST")
    router = R2Router.from_pretrained(args.router, embedder=None)
    inp = resolve_training_input(args)
    spec = router.config.embedder if args.embedder == "auto" else args.embedder
    if inp.embeddings is None and not spec:
        raise ConfigError("the checkpoint does not name its embedder; pass --embedder")
    if inp.embeddings is not None and inp.embedder != router.config.embedder:
        raise ConfigError(
            f"TEST {args.dataset} holds vectors of embedder {inp.embedder!r} but the router was trained with "
            f"{router.config.embedder!r}; pass outcomes with prompts (a long-format file) instead"
        )
    emb, _ = embed_training_input(inp, spec or "", cache_dir=args.cache_dir, progress=not args.quiet)
    start = time.perf_counter()
    result = evaluate_router(router, inp.dataset, emb, target=args.target, seed=args.seed)
    print(result.table())
    paths = write_results(result, args.out, stem="heldout_" + results_stem(inp.dataset.name).removeprefix("eval_"))
    print(f"\n{time.perf_counter() - start:.1f} s; wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _off_policy(args: argparse.Namespace) -> int:
    """Print the IPS estimate of ``--router`` at each ``--lambda`` from the store's decision log."""
    from r2router_core import R2Router, ips_from_store
    from r2router_core.store import OutcomeStore

    if not args.router:
        raise ConfigError("--store needs --router DIR: the router whose quality is estimated")
    router = R2Router.from_pretrained(args.router, embedder=None)
    print("lambda  IPS mean quality  std err  logged answers  matched")
    with OutcomeStore(args.store) as store:
        for lambda_ in args.lambdas or [None]:
            est = ips_from_store(store, router, lambda_)
            shown = router.config.lambda_ if lambda_ is None else lambda_
            print(f"{shown:<7g} {est.value:<17.4f} {est.stderr:<8.4f} {est.n:<15d} {est.matched}")
    return 0


def _export(
    args: argparse.Namespace, dataset: RoutingDataset, emb: NDArray[np.float32], result: Any
) -> RouterArenaFiles:
    from r2router_core.evaluation import (
        RouterMethod,
        complete_queries,
        held_out_choices,
    )
    from r2router_core.evaluation.datasets import routerarena_dir
    from r2router_core.interop.routerarena import (
        load_cached_results,
        routerarena_pool,
        routerarena_predictions,
        write_routerarena_submission,
    )

    data, rows = complete_queries(dataset)
    row = result.method("R2-Router")
    arms = held_out_choices(
        data, emb[rows], RouterMethod(k=args.k), row.fold_lambdas, n_folds=args.folds, seed=args.seed
    )
    cached = load_cached_results(routerarena_dir(args.data_dir))
    entries = routerarena_predictions(data, arms, cached)
    description = f"R2-Router (r2router): kNN k={args.k}, held-out choices of {args.folds}-fold cross-validation"
    return write_routerarena_submission(
        args.export_routerarena, args.router_name, entries, routerarena_pool(data, cached), description=description
    )
