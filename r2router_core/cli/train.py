"""``r2router train DATA_DIR --out DIR``: fit a router and save the checkpoint.

Unless ``--lambda`` is given, lambda is calibrated by 5-fold cross-validation on
the training data for ``--target`` (default: the best arena score), and
``--predictor auto`` picks the predictor and its main knob the same way; both
choices and their cross-validated scores are saved in config.json
(``r2router info`` shows them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from r2router_core.checkpoint import CONFIG_FILE
from r2router_core.config import DEFAULT_TARGET, PREDICTORS, RouterConfig
from r2router_core.router import R2Router


def add_parser(sub: Any) -> None:
    """Register the command."""
    p = sub.add_parser(
        "train",
        help="fit a router on a training-data directory",
        description=__doc__ + "\n\nDATA_DIR holds config.json and training_data/ "
        "(embeddings.npy + labels.json), or is a training_data directory given with --config.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--config", help="config.json to use instead of DATA_DIR/config.json")
    p.add_argument("--k", type=int, help="number of neighbours (default: the config's, 80)")
    p.add_argument("--lambda", dest="lambda_", type=float, help="cost weight in [0, 1] (default: calibrated by CV)")
    p.add_argument(
        "--target",
        help=f"what CV calibrates lambda and scores predictors for: arena, cost=USD_PER_1K or quality=Q "
        f"(default: {DEFAULT_TARGET})",
    )
    p.add_argument("--predictor", choices=PREDICTORS, help="predictor (default: the config's, knn)")
    p.add_argument("--alpha", type=float, help="ridge strength of ridge/logistic/blend (default 1.0)")
    p.add_argument("--blend-weight", type=float, help="kNN weight of blend, in [0, 1] (default 0.5)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds (default: 0)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Fit (choosing predictor and lambda by CV as asked) and save."""
    from r2router_core.evaluation.selection import train_router  # the evaluation machinery, only when training

    settings = {
        name: getattr(args, name)
        for name in ("k", "lambda_", "predictor", "alpha", "blend_weight")
        if getattr(args, name) is not None
    }
    config = RouterConfig.load(args.config) if args.config else None
    if config is None and (Path(args.data_dir) / CONFIG_FILE).is_file():
        config = RouterConfig.load(Path(args.data_dir) / CONFIG_FILE)
    predictor = settings.pop("predictor", config.predictor if config else "knn")
    start = time.perf_counter()
    # load and validate with the cheap kNN fit; train_router fits the predictor asked for
    base = R2Router.from_training_data(args.data_dir, config=config, **settings, predictor="knn")
    router = train_router(
        base.config.with_options(predictor=predictor),
        base.training_data,
        target=args.target,
        calibrate_lambda=args.lambda_ is None,
        n_folds=args.folds,
        seed=args.seed,
    )
    out = router.save(args.out)
    seconds = time.perf_counter() - start
    data, c = router.training_data, router.config
    print(
        f"trained on {data.n_queries} queries x {len(data.models)} models x {len(data.budgets)} budgets "
        f"({data.dim}-dim embeddings) in {seconds:.2f} s; saved to {Path(out).resolve()}"
    )
    chosen = (c.selection or {}).get("predictor", {}).get("chosen")
    print(f"predictor: {c.predictor}" + (f" (auto chose {chosen} by CV)" if chosen else ""))
    lam = (c.selection or {}).get("lambda")
    how = f"calibrated by CV for {lam['target']}" if lam else "as given"
    print(f"lambda:    {c.lambda_:.6g} ({how})")
    return 0
