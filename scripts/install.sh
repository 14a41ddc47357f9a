#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install qmriprep into it.
#   usage: scripts/install.sh [EXTRAS]      e.g. scripts/install.sh test
# torch==2.13.0 goes in FIRST: on this kind of machine pip takes that CPU build from local disk,
# while an unpinned torch (or a package pulling it) would download a multi-GB CUDA build.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${QMRIPREP_VENV:-$here/.venv}"
extras="${1:-}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
# -c requirements.lock: the exact versions CI and the Dockerfile use (regenerate: DEVELOPERS.md)
lock=(-c "$here/requirements.lock")
"$venv/bin/python" -m pip install -q "${lock[@]}" "torch==2.13.0"
if [ -n "$extras" ]; then
  "$venv/bin/python" -m pip install -q "${lock[@]}" -e "$here[$extras]"
else
  "$venv/bin/python" -m pip install -q "${lock[@]}" -e "$here"
fi
echo "qmriprep installed in $venv"
