"""Every predictor and ``auto`` on the real data sets, over several seeds: the Results page's numbers.

    OPENBLAS_NUM_THREADS=1 python benchmarks/predictors.py routerarena --seeds 0 1 2 3
    OPENBLAS_NUM_THREADS=1 python benchmarks/predictors.py alpacaeval-length --seeds 0 1 2 3

``--resume`` keeps the seeds already in the results file and runs only the missing ones.

``--holdout`` measures what a user sees before deploying instead: per seed, a seeded 70/30
train/test split; ``train_router`` (as ``r2router train``: lambda calibrated by CV on the training
part, the best-single guard on) with kNN, with kNN and the guard off, and with ``auto``; then
``evaluate_router`` on the test part (as ``r2router eval --router DIR TEST``): the true outcomes of
the chosen arms against the best single arm chosen on the training part. Writes
``benchmarks/results/heldout_<dataset>.json``.

For each seed: 5-fold cross-validation by query through ``r2router_core.evaluation.evaluate`` (each
fold's operating lambda calibrated for the arena score by inner CV on its training part; ``auto``
chooses its predictor by CV inside each training part too, never on the test fold). Writes
``benchmarks/results/predictors_<dataset>.json`` (every seed's rows, then mean and standard deviation
over seeds) and prints a Markdown table. Single-threaded BLAS is much faster on the shared 2-core VM.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from real_data import embed_named, load_named

from r2router_core.evaluation import AutoRouterMethod, complete_queries, evaluate_router, train_router
from r2router_core.evaluation.baselines import Oracle, RouterMethod, SingleArm, arm_label, observed_arms, point_router
from r2router_core.evaluation.metrics import cost_to_reach, peak_quality
from r2router_core.evaluation.runner import evaluate

PREDICTOR_ROWS = ("kNN", "ridge", "logistic", "blend", "auto")
OUT = Path(__file__).resolve().parent / "results"


def methods(dataset: Any) -> list[Any]:
    """kNN first and the point router second (the runner's matched-quality pair), then the others."""
    rows: list[Any] = [RouterMethod("kNN"), point_router(dataset.budgets)]
    rows += [RouterMethod(name, predictor=name) for name in ("ridge", "logistic", "blend")]  # type: ignore[arg-type]
    rows.append(AutoRouterMethod("auto", predictor="auto"))
    rows.append(Oracle())
    rows += [SingleArm(int(a), f"always {arm_label(dataset, int(a))}") for a in np.flatnonzero(observed_arms(dataset))]
    return rows


def seed_rows(result: Any, point_name: str) -> dict[str, dict[str, Any]]:
    """Per method: the table's numbers, plus the cost (x the point router's) to reach the point router's peak."""
    point = result.method(point_name)
    target = peak_quality(point.curve)
    point_cost = cost_to_reach(point.curve, target)
    out = {}
    for m in result.methods:
        row = m.to_dict(with_curve=False)
        row["cost_ratio_at_point_peak"] = cost_to_reach(m.curve, target) / point_cost
        out[m.name] = row
    return out


def summary(per_seed: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    keys = ("accuracy", "cost_per_1k", "arena_score", "audc", "peak_quality", "cost_ratio_at_point_peak")
    out = {}
    for name in per_seed[0]:
        out[name] = {}
        for k in keys:
            vals = np.array([s[name][k] for s in per_seed], dtype=np.float64)
            out[name][k] = float(vals.mean())
            out[name][k + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return out


def markdown(name: str, summ: dict[str, dict[str, float]], n_seeds: int) -> str:
    lines = [
        f"**{name}** (mean ± std over {n_seeds} seeds)",
        "",
        "| method | accuracy | USD/1K | arena | AUDC | peak | cost to reach point router's peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, r in summ.items():
        ratio = r["cost_ratio_at_point_peak"]
        shown = "not reached" if not np.isfinite(ratio) else f"{ratio:.2f}x ± {r['cost_ratio_at_point_peak_std']:.2f}"
        lines.append(
            f"| {method} | {r['accuracy']:.4f} ± {r['accuracy_std']:.4f} | {r['cost_per_1k']:.4g} | "
            f"{r['arena_score']:.2f} ± {r['arena_score_std']:.2f} | "
            f"{r['audc']:.4f} ± {r['audc_std']:.4f} | "
            f"{r['peak_quality']:.4f} | {shown} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["routerarena", "alpacaeval-length"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument(
        "--resume", action="store_true", help="keep the seeds already in the results file and run only the others"
    )
    parser.add_argument("--holdout", action="store_true", help="train/test hold-out instead of cross-validation")
    args = parser.parse_args()
    dataset = load_named(args.dataset, args.data_dir)
    emb, embedder = embed_named(dataset, "minilm")
    if args.holdout:
        holdout(args, dataset, emb, embedder)
        return
    details = previous_seeds(args) if args.resume else []
    per_seed = [d["rows"] for d in details]
    done = {d["seed"] for d in details}
    for seed in (s for s in args.seeds if s not in done):
        start = time.perf_counter()
        ms = methods(dataset)
        result = evaluate(dataset, emb, methods=ms, n_folds=5, seed=seed, target="arena", embedder=embedder)
        per_seed.append(seed_rows(result, ms[1].name))
        details.append({"seed": seed, "seconds": time.perf_counter() - start, "rows": per_seed[-1]})
        print(f"seed {seed}: {details[-1]['seconds']:.0f} s", flush=True)
        write(args, result, embedder, per_seed, details)  # after every seed: a partial run still leaves numbers


def previous_seeds(args: Any) -> list[dict[str, Any]]:
    """The per-seed records already written for this dataset (none if there is no file yet)."""
    path = OUT / ("predictors_" + args.dataset.replace("-", "_") + ".json")
    if not path.exists():
        return []
    return list(json.loads(path.read_text(encoding="utf-8"))["per_seed"])


def write(args: Any, result: Any, embedder: str, per_seed: list[Any], details: list[Any]) -> None:
    """Write the JSON and Markdown of the seeds done so far."""
    summ = summary(per_seed)
    stem = "predictors_" + args.dataset.replace("-", "_")
    payload = {
        "dataset": result.dataset,
        "n_queries": result.n_queries,
        "embedder": embedder,
        "protocol": "5-fold CV by query per seed; operating lambda calibrated for 'arena' by 5-fold CV inside "
        "each training part; auto chooses its predictor by 5-fold CV inside each training part",
        "seeds": [d["seed"] for d in details],
        "arena_scale": 100,
        "summary": summ,
        "per_seed": details,
    }
    (OUT / f"{stem}.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    md = markdown(result.dataset, summ, len(details))
    (OUT / f"{stem}.md").write_text(md + "\n", encoding="utf-8")
    print(md)


HOLDOUT_VARIANTS = {
    "kNN (train default: guard on)": {"predictor": "knn", "fallback_to_best_single": True},
    "kNN, guard off": {"predictor": "knn", "fallback_to_best_single": False},
    "auto (guard on)": {"predictor": "auto", "fallback_to_best_single": True},
}
"""Routers trained per seed: the row name -> the predictor and the guard setting."""


def holdout_seed(dataset: Any, emb: Any, seed: int, embedder: str) -> dict[str, Any]:
    """One seeded 70/30 split: every variant trained on the 70 %, scored on the 30 %."""
    data, rows = complete_queries(dataset)
    order = np.random.default_rng(seed).permutation(data.n_queries)
    cut = round(0.7 * data.n_queries)
    train, test = np.sort(order[:cut]), np.sort(order[cut:])
    vectors = emb[rows]
    train_data = data.subset(train).training_data(vectors[train])
    out: dict[str, Any] = {"seed": seed, "n_train": len(train), "n_test": len(test), "variants": {}}
    for name, v in HOLDOUT_VARIANTS.items():
        start = time.perf_counter()
        config = data.config(k=80, predictor=v["predictor"], embedder=embedder)
        router = train_router(config, train_data, target="arena", fallback_to_best_single=v["fallback_to_best_single"])
        result = evaluate_router(router, data.subset(test), vectors[test], seed=seed)
        selection = router.config.selection or {}
        r, best = result.method("R2-Router"), result.method("best single (chosen on train)")
        hindsight = next(m for m in result.methods if m.name.startswith("best single on test"))
        out["variants"][name] = {
            "router": {"accuracy": r.accuracy, "cost_per_1k": r.cost_per_1k, "arena_score": r.arena_score},
            "best_single_on_train": {
                "arm": (result.versus or {}).get("arm"),
                "accuracy": best.accuracy,
                "cost_per_1k": best.cost_per_1k,
                "arena_score": best.arena_score,
            },
            "hindsight": {"name": hindsight.name, "arena_score": hindsight.arena_score},
            "versus": result.versus,
            "guard": selection.get("guard"),
            "predictor": router.config.predictor,
            "auto": (selection.get("predictor") or {}).get("chosen"),
            "lambda": router.config.lambda_,
            "seconds": time.perf_counter() - start,
        }
        print(f"seed {seed} {name}: {result.verdict()}", flush=True)
    return out


def holdout(args: Any, dataset: Any, emb: Any, embedder: str) -> None:
    """Run the hold-out seeds and write ``heldout_<dataset>.json`` after each one."""
    path = OUT / ("heldout_" + args.dataset.replace("-", "_") + ".json")
    done = json.loads(path.read_text(encoding="utf-8"))["per_seed"] if args.resume and path.exists() else []
    seen = {d["seed"] for d in done}
    for seed in (s for s in args.seeds if s not in seen):
        start = time.perf_counter()
        done.append(holdout_seed(dataset, emb, seed, embedder))
        payload = {
            "dataset": dataset.name,
            "embedder": embedder,
            "protocol": "per seed: seeded 70/30 split of the complete queries; train_router on the 70 % (lambda "
            "calibrated for 'arena' by 5-fold CV, the best-single guard as stated per variant); evaluate_router "
            "on the 30 %: true outcomes of the chosen arms vs the best single arm chosen on the 70 %",
            "arena_scale": 100,
            "load_average": list(os.getloadavg()),
            "seeds": [d["seed"] for d in done],
            "per_seed": done,
        }
        path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        print(f"seed {seed}: {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
