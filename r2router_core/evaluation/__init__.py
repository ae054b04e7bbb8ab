"""Evaluation: datasets, metrics, baselines, cross-validation, calibration and the results table.

Before deploying a trained router, score it on held-out queries::

    from r2router_core.evaluation import evaluate_router

    result = evaluate_router(router, test_dataset)      # true outcomes of the arms it chooses
    print(result.table())                              # vs the best single model chosen on its training data

Cross-validation on one dataset::

    from r2router_core.evaluation import datasets, evaluate, write_results

    data, emb = datasets.make_synthetic_pool(1000)      # or load_routerarena() + embed_dataset()
    result = evaluate(data, emb, n_folds=5, k=80)
    print(result.table())
    write_results(result, "eval_results")               # JSON, CSV and the deferral-curve PNG

matplotlib and tqdm (the ``eval`` extra) are imported only when plotting or
showing progress.
"""

from r2router_core.evaluation import datasets as datasets  # loaders: load_routerarena, make_synthetic_pool, ...
from r2router_core.evaluation.baselines import (
    BestSingleOnTrain,
    Method,
    Oracle,
    RandomRouter,
    RouterMethod,
    SingleArm,
    default_methods,
    point_router,
)
from r2router_core.evaluation.calibration import (
    CalibrationResult,
    CalibrationTarget,
    calibrate,
    dataset_from_training_data,
)
from r2router_core.evaluation.cross_validation import MethodRun, complete_queries, cross_validate, kfold_splits
from r2router_core.evaluation.curves import DeferralCurve, deferral_curve, plot_deferral_curves
from r2router_core.evaluation.held_out import HeldOutResult, evaluate_router, restrict_to_router
from r2router_core.evaluation.metrics import (
    accuracy,
    arena_score,
    audc,
    cost_per_1k,
    lambda_grid,
    max_quality_arms,
    oracle_arms,
    peak_quality,
    qnc,
    realise,
)
from r2router_core.evaluation.routing_dataset import RoutingDataset
from r2router_core.evaluation.runner import (
    EvalResult,
    MethodResult,
    evaluate,
    held_out_choices,
    results_stem,
    write_results,
)
from r2router_core.evaluation.savings import (
    Counterfactual,
    DecisionTable,
    Estimate,
    NoTrafficError,
    SavingsReport,
    Switched,
    open_report_store,
    parse_time,
    read_decisions,
    report_from_store,
    savings_report,
)
from r2router_core.evaluation.selection import AutoRouterMethod, SelectionResult, select_predictor, train_router

__all__ = [
    "AutoRouterMethod",
    "BestSingleOnTrain",
    "CalibrationResult",
    "CalibrationTarget",
    "Counterfactual",
    "DecisionTable",
    "DeferralCurve",
    "Estimate",
    "EvalResult",
    "HeldOutResult",
    "Method",
    "MethodResult",
    "MethodRun",
    "NoTrafficError",
    "Oracle",
    "RandomRouter",
    "RouterMethod",
    "RoutingDataset",
    "SavingsReport",
    "SelectionResult",
    "SingleArm",
    "Switched",
    "accuracy",
    "arena_score",
    "audc",
    "calibrate",
    "complete_queries",
    "cost_per_1k",
    "cross_validate",
    "dataset_from_training_data",
    "datasets",
    "default_methods",
    "deferral_curve",
    "evaluate",
    "evaluate_router",
    "held_out_choices",
    "kfold_splits",
    "lambda_grid",
    "max_quality_arms",
    "open_report_store",
    "oracle_arms",
    "parse_time",
    "peak_quality",
    "plot_deferral_curves",
    "point_router",
    "qnc",
    "read_decisions",
    "realise",
    "report_from_store",
    "restrict_to_router",
    "results_stem",
    "savings_report",
    "select_predictor",
    "train_router",
    "write_results",
]
