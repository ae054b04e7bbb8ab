"""``r2router train DATA_DIR --out DIR``: fit a router and save the checkpoint."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from r2router_core.config import RouterConfig
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
    p.add_argument("--lambda", dest="lambda_", type=float, help="default cost weight in [0, 1]")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Fit and save."""
    settings: dict[str, Any] = {}
    if args.lambda_ is not None:
        settings["lambda_"] = args.lambda_
    config = RouterConfig.load(args.config) if args.config else None
    start = time.perf_counter()
    router = R2Router.from_training_data(args.data_dir, args.k, config=config, **settings)
    out = router.save(args.out)
    seconds = time.perf_counter() - start
    data = router.training_data
    print(
        f"trained on {data.n_queries} queries x {len(data.models)} models x {len(data.budgets)} budgets "
        f"({data.dim}-dim embeddings) in {seconds:.2f} s; saved to {Path(out).resolve()}"
    )
    return 0
