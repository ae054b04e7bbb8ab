"""The adaptation curve: how fast feedback and reloads move traffic to the arm that became better.

The world (the gateway tests' stub): three models, maths and poem prompts; the
router was trained when the large model was best on maths. Then the world
changes: users now rate the large model's maths answers 0, the medium model's 1
and the small one's 0.2. Each round routes 10 new maths prompts, logs them
(``DecisionLog``), records the users' feedback, and reloads exactly as the
gateway's ``POST /admin/reload`` does (the loaded router plus
``training_data_from_decisions``, via ``add_outcomes``). The curve is the share of
each round sent to the medium model, without and with exploration.

    python benchmarks/adaptation.py --out benchmarks/results/adaptation
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.execute.exploration import ExplorationPolicy
from r2router_core.execute.records import decision_record
from r2router_core.store import training_data_from_decisions
from r2router_core.store.decision_log import DecisionLog
from r2router_core.testing import HashEmbedder

VERDICT = {"large": 0.0, "medium": 1.0, "small": 0.2}
"""The users' verdict on maths answers after the change."""


def stub_router() -> R2Router:
    """The gateway tests' router: maths needs the large model at 400 tokens, poems are fine on the small one."""
    embedder = HashEmbedder(dim=32)
    prompts = [f"{topic} question number {i}" for topic in ("math", "poem") for i in range(20)]
    quality = np.zeros((40, 3, 3))
    quality[:20] = [[0.10, 0.15, 0.15], [0.30, 0.40, 0.45], [0.50, 0.95, 0.90]]
    quality[20:] = 0.9
    models = (ModelSpec("small", 0.5), ModelSpec("medium", 2.0), ModelSpec("large", 10.0))
    config = RouterConfig(models=models, budgets=(100, 400, None), lambda_=0.9, k=5, embedder=embedder.id)
    names = tuple(m.name for m in models)
    data = TrainingData(embedder.embed(prompts), names, (100, 400, None), quality, np.full((40, 3), 300.0))
    return R2Router(config, data, embedder=embedder)


def curve(rounds: int, per_round: int, explore: float, seed: int) -> list[float]:
    """Share of each round's maths prompts routed to the medium model."""
    base = stub_router()
    router = base
    policy = ExplorationPolicy(explore)
    rng = np.random.default_rng(seed)
    shares = []
    with tempfile.TemporaryDirectory() as tmp, DecisionLog(Path(tmp) / "log.db") as log:
        for r in range(rounds):
            texts = [f"math question number {1000 + r * per_round + i}" for i in range(per_round)]
            embeddings = router.embed(texts)
            medium = 0
            for i, (embedding, decision) in enumerate(zip(embeddings, router.route_batch(embeddings), strict=True)):
                arm, propensity = policy.choose(decision, rng)
                medium += arm.model == "medium"
                decision_id = f"r{r}-{i}"
                record = decision_record(
                    decision,
                    arm,
                    decision_id=decision_id,
                    source="python",
                    embedding=embedding,
                    propensity=propensity,
                    output_tokens=300,
                )
                log.record(record)
                log.feedback(decision_id, VERDICT[arm.model])
            shares.append(medium / per_round)
            config = base.config
            logged = training_data_from_decisions(
                log.store, config.model_names, config.budgets, token_axes=2, embedder_id=config.embedder
            )
            router = R2Router(config, base.training_data, embedder=base.embedder)
            if logged is not None:
                router.add_outcomes(logged)
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--explore", type=float, default=0.1, help="the exploring curve's rate (default: 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/adaptation", help="PATH for PATH.json and PATH.png")
    args = parser.parse_args()
    results = {
        "rounds": args.rounds,
        "per_round": args.per_round,
        "no_exploration": curve(args.rounds, args.per_round, 0.0, args.seed),
        f"explore_{args.explore:g}": curve(args.rounds, args.per_round, args.explore, args.seed),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = [args.per_round * r for r in range(args.rounds)]  # feedback events before the round was routed
    for name in ("no_exploration", f"explore_{args.explore:g}"):
        ax.plot(x, results[name], marker="o", label=name.replace("_", " "))
    ax.set_xlabel("feedback events before the round (one reload per 10)")
    ax.set_ylabel("share of the round sent to medium")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Maths traffic moves to the model users now prefer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
