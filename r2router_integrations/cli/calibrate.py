"""``r2router calibrate --router DIR --target cost=0.5``: choose lambda for a dollar, quality or arena target.

Without DATASET, lambda is chosen by k-fold cross-validation on the
checkpoint's own training data (cost = tokens x the config's output prices).
With DATASET (a held-out calibration set in any form ``r2router train``
reads: routerarena, alpacaeval-length, synthetic, a card-layout directory or
a long-format file), the checkpoint's router routes its queries
and the true outcomes decide. The chosen lambda is stored in the config of
the checkpoint written to --out (default: the --router directory itself).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2router_core import ConfigError
from r2router_integrations.cli.inputs import (
    DATA_DESCRIPTION,
    add_training_input_arguments,
    embed_training_input,
    resolve_training_input,
)

if TYPE_CHECKING:
    from r2router_core import R2Router
    from r2router_core.evaluation import CalibrationResult

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Register the command."""
    p = sub.add_parser(
        "calibrate",
        help="choose lambda for a cost, quality or arena-score target and store it in a checkpoint",
        description=f"{__doc__}\n{DATA_DESCRIPTION.replace('DATA ', 'DATASET ', 1)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--router", required=True, help="checkpoint directory to calibrate")
    add_training_input_arguments(p, metavar="DATASET", required=False, embedder="auto")
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
    from r2router_core import R2Router
    from r2router_core.evaluation import calibrate, dataset_from_training_data

    router_dir = Path(args.router)
    if not router_dir.is_dir():
        raise ConfigError(f"--router must be a local checkpoint directory, got {args.router!r}")
    router = R2Router.from_pretrained(router_dir)
    if args.dataset is None:
        for option in ("models", "config"):
            if getattr(args, option):
                raise ConfigError(f"--{option} describes DATASET; pass DATASET too, or leave --{option} out")
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
        result, source, in_training = _calibrate_on_dataset(args, router)
        if not in_training:
            print(
                f"note: lambda is chosen on {args.dataset}, not on the router's training data; do not score the "
                "router on these queries afterwards (eval --router needs queries it was neither trained nor "
                "calibrated on)",
                file=sys.stderr,
            )
    out = Path(args.out) if args.out else router_dir
    result.apply(router).save(out)
    if args.json:
        summary = {**result.to_dict(), "arena_scale": 100, "checkpoint": str(out), "calibrated_on": source}
        print(json.dumps(summary, indent=2))
        return 0
    status = "met" if result.met else "NOT met (closest point taken)"
    print(
        f"target {result.target}: {status}\n"
        f"lambda:        {result.lambda_!r}\n"
        f"accuracy:      {result.accuracy:.4f}\n"
        f"cost:          {result.cost_per_1k:.4g} USD per 1K queries\n"
        f"arena score:   {result.arena_score:.2f} (0-100)\n"
        f"calibrated on: {source}\n"
        f"saved to:      {out} (config.json 'lambda')"
    )
    return 0


def _calibrate_on_dataset(args: argparse.Namespace, router: R2Router) -> tuple[CalibrationResult, str, bool]:
    """The router routes DATASET's queries; their true outcomes choose lambda.

    Returns:
        (the result, where it was calibrated, whether every DATASET query is in the router's training data).
    """
    from r2router_core.evaluation import calibrate

    inp = resolve_training_input(args)
    spec = router.config.embedder if args.embedder == "auto" else args.embedder
    if inp.embeddings is None and spec is None:
        raise ConfigError("the checkpoint does not name its embedder; pass --embedder")
    if inp.embedder is not None and inp.embedder != router.config.embedder:
        raise ConfigError(
            f"DATASET {args.dataset} holds vectors of embedder {inp.embedder!r} but the router was trained "
            f"with {router.config.embedder!r}; pass outcomes with prompts (a long-format file) instead"
        )
    emb, _ = embed_training_input(inp, spec or "", cache_dir=args.cache_dir, progress=not args.quiet)
    result = calibrate(inp.dataset, emb, target=args.target, router=router)
    ids = router.training_data.query_ids if router.has_training_data else None
    in_training = ids is not None and set(inp.dataset.query_ids) <= set(ids)
    return result, f"{inp.dataset.name} ({inp.dataset.n_queries} queries) routed by the checkpoint", in_training
