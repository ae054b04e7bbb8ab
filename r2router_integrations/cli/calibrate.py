"""``r2router calibrate --router DIR --target cost=0.5``: choose lambda for a dollar, quality or arena target.

Without DATASET, lambda is chosen by k-fold cross-validation on the
checkpoint's own training data (cost = tokens x the config's output prices).
With DATASET (a held-out calibration set: routerarena, alpacaeval-length,
synthetic or a long-format file), the checkpoint's router routes its queries
and the true outcomes decide. The chosen lambda is stored in the config of
the checkpoint written to --out (default: the --router directory itself).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from r2router_core.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Register the command."""
    from r2router_integrations.cli.eval import add_dataset_arguments

    p = sub.add_parser(
        "calibrate",
        help="choose lambda for a cost, quality or arena-score target and store it in a checkpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--router", required=True, help="checkpoint directory to calibrate")
    add_dataset_arguments(p, required=False, embedder="auto")
    p.add_argument(
        "--target",
        required=True,
        help="cost=USD_PER_1K_QUERIES (best quality within it), quality=Q (cheapest reaching it) or arena",
    )
    p.add_argument("--out", help="checkpoint directory to write (default: overwrite --router)")
    p.add_argument("--folds", type=int, default=5, help="folds of the cross-validation without DATASET (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds (default: 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate and save."""
    from r2router_core.evaluation.calibration import calibrate, dataset_from_training_data
    from r2router_core.router import R2Router
    from r2router_integrations.cli.eval import embed_for_eval, load_named_dataset

    router_dir = Path(args.router)
    if not router_dir.is_dir():
        raise ConfigError(f"--router must be a local checkpoint directory, got {args.router!r}")
    router = R2Router.from_pretrained(router_dir)
    if args.dataset is None:
        data = router.training_data
        view = dataset_from_training_data(data, router.config, name=f"{router_dir.name} training data")
        result = calibrate(
            view,
            data.embeddings,
            target=args.target,
            k=router.config.k,
            n_folds=args.folds,
            seed=args.seed,
            progress=not args.quiet,
        )
        source = f"{args.folds}-fold CV on the checkpoint's {data.n_queries} training queries"
    else:
        dataset, emb = load_named_dataset(
            args.dataset, data_dir=args.data_dir, n_queries=args.n_queries, seed=args.seed
        )
        if emb is None:
            spec = router.config.embedder if args.embedder == "auto" else args.embedder
            if spec is None:
                raise ConfigError("the checkpoint does not name its embedder; pass --embedder")
            emb, _ = embed_for_eval(dataset, spec, cache_dir=args.cache_dir, progress=not args.quiet)
        result = calibrate(dataset, emb, target=args.target, router=router)
        source = f"{dataset.name} ({dataset.n_queries} queries) routed by the checkpoint"
    out = Path(args.out) if args.out else router_dir
    result.apply(router).save(out)
    if args.json:
        print(json.dumps({**result.to_dict(), "checkpoint": str(out), "calibrated_on": source}, indent=2))
        return 0
    status = "met" if result.met else "NOT met (closest point taken)"
    print(
        f"target {result.target}: {status}\n"
        f"lambda:        {result.lambda_!r}\n"
        f"accuracy:      {result.accuracy:.4f}\n"
        f"cost:          {result.cost_per_1k:.4g} USD per 1K queries\n"
        f"arena score:   {100 * result.arena_score:.2f}\n"
        f"calibrated on: {source}\n"
        f"saved to:      {out} (config.json 'lambda')"
    )
    return 0
