# Source this file: it creates (or reuses) the project's virtual environment and installs the
# package with its test extra when pyproject.toml changed since the last install.
#   ANATOSYNTH_VENV  where the environment lives (default: <repo>/.venv)
#   PYTHON           the interpreter that creates it (default: python3, must be >= 3.10)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ANATOSYNTH_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "AnatoSynth needs Python >= 3.10; '$PY' is $("$PY" --version 2>&1). Set PYTHON=/path/to/python3.x" >&2
  return 1 2>/dev/null || exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "[anatosynth] creating the virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.anatosynth-installed"
WANT="$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()[:16])' "$ROOT/pyproject.toml") $ROOT"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "[anatosynth] installing anatosynth-components and its dependencies into $VENV (a few minutes the first time)"
  LOG="$VENV/anatosynth-install.log"
  if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
         "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$ROOT[test]"; } > "$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    echo "[anatosynth] installation failed; the full log is $LOG" >&2
    return 1 2>/dev/null || exit 1
  fi
  # ST-LPIPS (stlpips-pytorch, with its undeclared IPython / torchsummary imports) is the realism figure
  # every evaluation reports: check that it imports and has its shipped weights
  if ! "$VENV/bin/python" -c 'import sys
from anatosynth_components.metrics import stlpips_status
ok, why = stlpips_status()
sys.exit(0 if ok else "ST-LPIPS unavailable: " + why)' 2>> "$LOG"; then
    tail -n 3 "$LOG" >&2
    echo "[anatosynth] the installed environment cannot compute ST-LPIPS; the full log is $LOG" >&2
    return 1 2>/dev/null || exit 1
  fi
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
