"""Every predictor and ``auto`` on the real data sets, over several seeds: the Results page's numbers.

    OPENBLAS_NUM_THREADS=1 python benchmarks/predictors.py routerarena --seeds 0 1 2 3
    OPENBLAS_NUM_THREADS=1 python benchmarks/predictors.py alpacaeval-length --seeds 0 1 2 3

``--resume`` keeps the seeds already in the results file and runs only the missing ones.

For each seed: 5-fold cross-validation by query through ``r2router_core.evaluation.evaluate`` (each
fold's operating lambda calibrated for the arena score by inner CV on its training part; ``auto``
chooses its predictor by CV inside each training part too, never on the test fold). Writes
``benchmarks/results/predictors_<dataset>.json`` (every seed's rows, then mean and standard deviation
over seeds) and prints a Markdown table. Single-threaded BLAS is much faster on the shared 2-core VM.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from real_data import embed_named, load_named

from r2router_core.evaluation.baselines import Oracle, RouterMethod, SingleArm, arm_label, observed_arms, point_router
from r2router_core.evaluation.metrics import cost_to_reach, peak_quality
from r2router_core.evaluation.runner import evaluate

PREDICTOR_ROWS = ("kNN", "ridge", "logistic", "blend", "auto")
OUT = Path(__file__).resolve().parent / "results"


def methods(dataset: Any) -> list[Any]:
    """kNN first and the point router second (the runner's matched-quality pair), then the others."""
    rows: list[Any] = [RouterMethod("kNN"), point_router(dataset.budgets)]
    rows += [RouterMethod(name, predictor=name) for name in ("ridge", "logistic", "blend", "auto")]  # type: ignore[arg-type]
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
            f"{100 * r['arena_score']:.2f} ± {100 * r['arena_score_std']:.2f} | "
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
    args = parser.parse_args()
    dataset = load_named(args.dataset, args.data_dir)
    emb, embedder = embed_named(dataset, "minilm")
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
        "summary": summ,
        "per_seed": details,
    }
    (OUT / f"{stem}.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    md = markdown(result.dataset, summ, len(details))
    (OUT / f"{stem}.md").write_text(md + "\n", encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
