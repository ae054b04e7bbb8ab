#!/usr/bin/env bash
# Reproduce benchmarks/results/eval_*: R2-Router vs the baselines on the real shared data,
# 5-fold cross-validation by query, MiniLM embeddings (offline), k = 80, seed 0, each fold's
# operating lambda calibrated for the best arena score on its training folds only.
#
#   bash benchmarks/run_eval.sh            # data from $R2ROUTER_DATA_DIR, else ../shared/data
#
# Writes eval_<dataset>.{json,csv,png} (numbers, table, deferral curves) and eval_<dataset>.txt
# (the printed table) into benchmarks/results/. Embeddings are cached on disk
# (~/.cache/r2router/embeddings, or $R2ROUTER_CACHE_DIR), so a second run embeds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${R2ROUTER_DATA_DIR:-../shared/data}"
OUT=benchmarks/results
mkdir -p "$OUT"
for DATASET in routerarena alpacaeval-length; do
    STEM="eval_${DATASET//-/_}"
    [ "$DATASET" = routerarena ] && STEM=eval_routerarena_sub10
    r2router eval "$DATASET" --data-dir "$DATA_DIR" --embedder minilm --folds 5 --seed 0 --k 80 \
        --target arena --out "$OUT" | tee "$OUT/$STEM.txt"
done
