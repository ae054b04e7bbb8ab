"""``r2router train DATA --out DIR``: fit a router and save the checkpoint.

Every pool model needs its input and output price (USD per 1M tokens; 0 for a free
model): a price not given stops the command before any work, and the summary prints
the prices the router was trained on.

Unless ``--lambda`` is given, lambda is calibrated by cross-validation on the
training data for ``--target`` (default: the best arena score), and
``--predictor auto`` picks the predictor and its main knob the same way; both
choices and their cross-validated scores are saved in config.json
(``r2router info`` shows them).

``--store URL`` adds the outcome store: its collected calls (``r2router collect``) are the
training set when no DATA is given, and its logged answers with feedback (the decision log
of ``r2router serve --store``, LangChain's and LlamaIndex's ``store=``) are appended to it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from r2router_core import (
    DEFAULT_TARGET,
    PREDICTORS,
    ConfigError,
    ModelSpec,
    R2Router,
    RouterConfig,
    TrainingData,
    check_prices,
)
from r2router_integrations.cli.common import hide_password
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
    add_training_input_arguments(p, required=False)
    p.add_argument("--store", metavar="URL", help="outcome store: its collected calls and logged feedback")
    p.add_argument(
        "--router",
        metavar="DIR",
        help="a saved router (e.g. the one 'r2router serve' runs) whose training data is DATA: with --store, "
        "retrain it on its data plus the logged feedback",
    )
    p.add_argument("--grader", help="whose grades are the collected quality (default: the store's only grader)")
    p.add_argument(
        "--accept-degenerate-grades",
        action="store_true",
        help="train on collected grades that give one score to nearly every answer (refused by default)",
    )
    p.add_argument("--out", required=True, help="checkpoint directory to write (written atomically)")
    p.add_argument("--force", action="store_true", help="replace an existing checkpoint at --out (whole, atomically)")
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
    p.add_argument(
        "--no-fallback",
        action="store_true",
        help="keep routing even when CV finds it does not beat the best single arm beyond noise (default: the "
        "router then sends every query to that arm, and says so)",
    )
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds (default: 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Read DATA, embed its prompts if it has no vectors, fit and save."""
    start = time.perf_counter()
    if args.router is not None:
        if args.dataset is not None:
            raise ConfigError("give DATA or --router DIR, not both")
        args.dataset = args.router  # a checkpoint directory is a training-data directory
    if args.dataset is None and args.store is None:
        raise ConfigError("give DATA, --store URL, or both")
    out_dir = Path(args.out)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not args.force:
        raise ConfigError(
            f"--out {args.out} already exists; pass --force to replace it whole (atomically), or a new directory"
        )
    if args.dataset is None:
        config, data = _collected(args)
    else:
        config, data = _from_data(args)
    from r2router_core.evaluation import train_router  # the evaluation machinery, only when training

    settings = {
        name: getattr(args, name)
        for name in ("k", "lambda_", "predictor", "alpha", "blend_weight")
        if getattr(args, name) is not None
    }
    router = train_router(
        config.with_options(**settings) if settings else config,
        data,
        target=args.target,
        calibrate_lambda=args.lambda_ is None,
        n_folds=args.folds,
        seed=args.seed,
        fallback_to_best_single=not args.no_fallback,
    )
    logged = 0
    if args.store is not None:
        logged = _add_logged(router, args.store)
    out = router.save(args.out)
    seconds = time.perf_counter() - start
    data = router.training_data
    from_log = f" ({logged} from the decision log)" if args.store is not None else ""
    print(
        f"trained on {data.n_queries} queries{from_log} x {len(data.models)} models x {len(data.budgets)} budgets "
        f"({data.dim}-dim embeddings) in {seconds:.2f} s; saved to {Path(out).resolve()}"
    )
    c = router.config
    print(f"prices:    {price_summary(c.models)} (USD per 1M tokens, in/out)")
    chosen = (c.selection or {}).get("predictor", {}).get("chosen")
    print(f"predictor: {c.predictor}" + (f" (auto chose {chosen} by CV)" if chosen else ""))
    lam = (c.selection or {}).get("lambda")
    how = f"calibrated by CV for {lam['target']}" if lam else "as given"
    print(f"lambda:    {c.lambda_:.6g} ({how})")
    guard = (c.selection or {}).get("guard")
    if guard is not None:
        print("vs best:   " + guard_line(guard, (c.selection or {}).get("best_single", {}).get("label", "?")))
    return 0


def price_summary(models: tuple[ModelSpec, ...]) -> str:
    """The prices a router was trained on, for people: ``small 0.5/1, local free/free``."""
    return ", ".join(f"{m.name} {m.price_text('input_price')}/{m.price_text('output_price')}" for m in models)


def guard_line(guard: dict[str, Any], arm: str) -> str:
    """One line: does routing beat the best single arm by CV, and what the router does about it."""
    gain = f"{guard['gain']:+.4g} ± {guard['standard_error']:.2g} {guard['metric']}"
    if guard["beats"]:
        return f"routing beats the best single arm {arm} by {gain} ({guard['n_folds']}-fold CV)"
    if guard.get("fallback"):
        return (
            f"routing does NOT beat the best single arm {arm} beyond noise ({gain}, {guard['n_folds']}-fold CV): "
            "this router sends every query to it (train --no-fallback to route anyway)"
        )
    return (
        f"routing does NOT beat the best single arm {arm} beyond noise ({gain}, {guard['n_folds']}-fold CV); "
        "routing anyway (--no-fallback)"
    )


def _collected(args: argparse.Namespace) -> tuple[RouterConfig, TrainingData]:
    from r2router_core.embedders import load_embedder
    from r2router_core.store import OutcomeStore, config_from_store, training_data_from_store
    from r2router_integrations.collect.graders import require_usable_grades

    with OutcomeStore(args.store) as store:
        names = store.graders()
        if not names:
            _no_collected_calls(store, hide_password(args.store))
        check_prices(store.models())  # before embedding: a price not given is an error, not $0
        grader = args.grader if args.grader is not None else (names[0] if len(names) == 1 else None)
        if grader in names:  # a grader that scores every answer alike labels nothing
            require_usable_grades(store, grader, accept_degenerate=args.accept_degenerate_grades)
        embedder = load_embedder(args.embedder, cache_size=0)
        data = training_data_from_store(store, embedder, grader=args.grader)
        return config_from_store(store, data, embedder), data


def _no_collected_calls(store: Any, url: str) -> None:
    """Raise the error that names the fix for a store without graded collected calls."""
    logged = store.count_decisions()
    if logged:
        raise ConfigError(
            f"the store {url} holds {logged} logged decisions (a gateway's or an app's log) but no graded "
            "collected calls to train on from scratch; retrain the router being served on its data plus "
            f"this log: r2router train --router ROUTER_DIR --store {url} --out NEW_DIR"
        )
    raise ConfigError(
        f"the store {url} holds no graded calls; collect some with 'r2router collect run' (it grades them), "
        "or give DATA"
    )


def _add_logged(router: R2Router, url: str) -> int:
    from r2router_core.store import OutcomeStore, training_data_from_decisions

    config = router.config
    with OutcomeStore(url) as store:
        logged = training_data_from_decisions(
            store,
            config.model_names,
            config.budgets,
            token_axes=router.training_data.tokens.ndim,
            embedder_id=config.embedder,
        )
    if logged is None:
        return 0
    router.add_outcomes(logged)
    return logged.n_queries


def _from_data(args: argparse.Namespace) -> tuple[RouterConfig, TrainingData]:
    inp = resolve_training_input(args)
    check_prices(inp.dataset.models if inp.config is None else inp.config)  # the plan: before any embedding
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
    return config, data
