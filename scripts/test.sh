#!/usr/bin/env bash
# Install qmriprep with its test dependencies and run the test suite (what CI runs).
#   usage: scripts/test.sh [PYTEST ARGS...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${QMRIPREP_VENV:-$here/.venv}"
bash "$here/scripts/install_system.sh"   # slurm + munge for tests/test_hpc_slurm.py (root, apt)
bash "$here/scripts/install.sh" test
cd "$here"
"$venv/bin/python" -m pytest -n 2 --durations=15 "$@"
