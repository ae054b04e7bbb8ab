"""``r2router train DATA --out DIR``: fit a router and save the checkpoint."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from r2router_core import ConfigError, R2Router
from r2router_integrations.cli.inputs import (
    DATA_DESCRIPTION,
    add_training_input_arguments,
    embed_training_input,
    resolve_training_input,
)


def add_parser(sub: Any) -> None:
    """Register the command."""
    p = sub.add_parser(
        "train",
        help="fit a router on a training-data directory or an outcomes file",
        description=f"{__doc__}\n{DATA_DESCRIPTION}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_training_input_arguments(p)
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--k", type=int, help="number of neighbours (default: the config's, 80)")
    p.add_argument("--lambda", dest="lambda_", type=float, help="default cost weight in [0, 1]")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Read DATA, embed its prompts if it has no vectors, fit and save."""
    start = time.perf_counter()
    inp = resolve_training_input(args)
    if inp.config is not None and inp.training_data is not None:
        config, data = inp.config, inp.training_data
    else:
        emb, embedder_id = embed_training_input(inp, args.embedder, cache_dir=args.cache_dir, progress=not args.quiet)
        if embedder_id is None:
            raise ConfigError(
                f"DATA {args.dataset} comes with vectors but no embedder, so its router could not route text; "
                "train on a card-layout directory or an outcomes file"
            )
        config, data = inp.dataset.config(embedder=embedder_id), inp.dataset.training_data(emb)
    settings = {key: value for key, value in (("k", args.k), ("lambda_", args.lambda_)) if value is not None}
    router = R2Router(config.with_options(**settings) if settings else config, data)
    out = router.save(args.out)
    seconds = time.perf_counter() - start
    print(
        f"trained on {data.n_queries} queries x {len(data.models)} models x {len(data.budgets)} budgets "
        f"({data.dim}-dim embeddings) in {seconds:.2f} s; saved to {Path(out).resolve()}"
    )
    return 0
