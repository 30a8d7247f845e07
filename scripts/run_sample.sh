#!/usr/bin/env bash
# One command from a fresh clone: set up, then run the RLAIF loop on the bundled text-to-SQL sample (offline, CPU).
# Extra arguments go to `rlaif run`, e.g. --judge biased or --iterations 1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec .venv/bin/rlaif --store "${RLAIF_STORE:-rlaif.duckdb}" run sample_data/harbor_sql/loop.yaml "$@"
