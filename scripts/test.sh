#!/usr/bin/env bash
# The whole test suite (README, "Quick start"): installs as needed, then runs pytest on 2 workers.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
python -m pytest -n 2 --doctest-modules tests anatosynth_components "$@"
