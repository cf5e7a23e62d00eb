#!/usr/bin/env bash
# The whole test suite (README, "Quick start"): installs as needed, then runs pytest on 2 workers.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
# one BLAS/torch thread per worker: 2 workers on 2 cores; tiny networks also run faster single-threaded
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python -m pytest -n 2 --doctest-modules tests anatosynth_components "$@"
