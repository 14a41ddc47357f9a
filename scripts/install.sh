#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install qmriprep into it.
#   usage: scripts/install.sh [EXTRAS]      e.g. scripts/install.sh test
# torch==2.13.0 goes in FIRST: on this kind of machine it is a CPU build on local disk (pip's
# find-links, PIP_FIND_LINKS), while an unpinned torch (or a package pulling it) would download a
# multi-GB CUDA build. The installer is uv (pinned in requirements.lock; about 10x faster than pip
# here, benchmarks/RESULTS.md) with pip's find-links passed on; QMRIPREP_INSTALLER=pip, or uv
# failing to install, uses pip itself. Both take the exact versions of requirements.lock.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${QMRIPREP_VENV:-$here/.venv}"
extras="${1:-}"
target="$here${extras:+[$extras]}"
lock=(-c "$here/requirements.lock")
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
if [ "${QMRIPREP_INSTALLER:-uv}" = uv ] && "$venv/bin/python" -m pip install -q "${lock[@]}" uv; then
  links="${PIP_FIND_LINKS:-$("$venv/bin/python" -m pip config get global.find-links 2>/dev/null || true)}"
  install=("$venv/bin/uv" pip install -q --python "$venv/bin/python" ${links:+--find-links "$links"})
else
  install=("$venv/bin/python" -m pip install -q)
fi
"${install[@]}" "${lock[@]}" "torch==2.13.0"
"${install[@]}" "${lock[@]}" -e "$target"
echo "qmriprep installed in $venv"
