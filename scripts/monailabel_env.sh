#!/usr/bin/env bash
# The MONAI Label environment (README, "Publishing and serving"): creates (or reuses) a small virtual
# environment holding monailabel and the packages it pins, layered over the project's environment,
# and prints its path.
#   ANATOSYNTH_VENV             the project's environment (default: <repo>/.venv; made by
#                               scripts/bootstrap.sh when missing)
#   ANATOSYNTH_MONAILABEL_VENV  where the MONAI Label environment lives (default: <repo>/.venv-monailabel)
#   MONAILABEL_VERSION          the monailabel release (default: 0.8.5)
#
# Why a separate environment: monailabel's dependencies pin numpy < 2 (numpymaxflow, pydicom-seg) and
# jsonschema < 4 (pydicom-seg), while the project's environment has numpy 2 and needs jsonschema >= 4
# for `monai.bundle verify_metadata` (the zoo schema is JSON Schema draft 2019-09).
#
# Why it is small: it does not install torch, MONAI or anatosynth-components a second time (several
# GB). A .pth file appends the project environment's site-packages to its sys.path (after its own),
# so monailabel's pins (numpy 1.26, jsonschema 3.2, ...) win and everything else (torch, MONAI,
# anatosynth-components, editable) comes from the project's environment. torch, scipy and the other
# compiled packages there are built against numpy 2, whose C API stays compatible with numpy 1.x at
# run time. One pip run installs monailabel's own requirements (read from its wheel), all of them but
# `sam2` (a source distribution whose build installs a second torch; the bundle app's SAM tools are
# switched off with `--conf sam2 false`), with these constraints: pydicom < 3, dicomweb-client < 0.60
# and pynetdicom < 3, because pydicom-seg 0.4.1 (monailabel 0.8.5's) imports a module that pydicom 3
# removed, and the newer dicomweb-client and pynetdicom need pydicom 3. Then the monailabel wheel
# itself, without dependencies. About 1 minute on a 2-core machine (README).
# Reinstalls when this script, MONAILABEL_VERSION or the project environment changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIN="${ANATOSYNTH_VENV:-$ROOT/.venv}"
VENV="${ANATOSYNTH_MONAILABEL_VENV:-$ROOT/.venv-monailabel}"
VERSION="${MONAILABEL_VERSION:-0.8.5}"
log() { echo "[monailabel-env] $*" >&2; }

if [ ! -x "$MAIN/bin/python" ]; then
  log "the project environment $MAIN is missing: creating it (scripts/bootstrap.sh)"
  # shellcheck source=bootstrap.sh
  ANATOSYNTH_VENV="$MAIN" source "$ROOT/scripts/bootstrap.sh" >&2
fi
MAIN_SITE="$("$MAIN/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating the virtual environment $VENV (over $MAIN)"
  "$MAIN/bin/python" -m venv --without-pip "$VENV"
fi
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
STAMP="$VENV/.anatosynth-monailabel-installed"
WANT="$("$MAIN/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()[:16])' "${BASH_SOURCE[0]}") $VERSION $MAIN_SITE"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  log "installing monailabel $VERSION into $VENV (about a minute the first time)"
  # after the environment's own site-packages: its pins shadow the project's numpy and jsonschema
  echo "import site; site.addsitedir('$MAIN_SITE')" > "$SITE/zz_anatosynth_project.pth"
  LOG="$VENV/anatosynth-install.log"
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  PIP=("$MAIN/bin/python" -m pip --python "$VENV/bin/python" --disable-pip-version-check)
  printf '%s\n' "pydicom>=2.4.4,<3" "dicomweb-client<0.60" "pynetdicom<3" > "$WORK/constraints.txt"
  if ! {
    "${PIP[@]}" download --no-deps --only-binary=:all: -d "$WORK" "monailabel==$VERSION" &&
    "$MAIN/bin/python" - "$WORK" > "$WORK/requirements.txt" <<'EOF' &&
import glob, sys, zipfile

from packaging.requirements import Requirement

wheel = glob.glob(f"{sys.argv[1]}/monailabel-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
for line in meta.splitlines():
    if line.startswith("Requires-Dist:"):
        req = Requirement(line.split(":", 1)[1].strip())
        if req.name.lower() != "sam2" and (req.marker is None or req.marker.evaluate({"extra": ""})):
            print(req)
EOF
    "${PIP[@]}" install -r "$WORK/requirements.txt" -c "$WORK/constraints.txt" &&
    "${PIP[@]}" install --no-deps "$WORK"/monailabel-*.whl &&
    "$VENV/bin/python" -c 'import numpy, monailabel, monai, torch, anatosynth_components; assert numpy.__version__ < "2"'
  } > "$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    log "installation failed; the full log is $LOG"
    exit 1
  fi
  echo "$WANT" > "$STAMP"
fi
echo "$VENV"
