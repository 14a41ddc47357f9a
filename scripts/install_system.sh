#!/usr/bin/env bash
# System packages the tests need: a single-node SLURM cluster (slurmctld, slurmd, sbatch), munge, and
# chromium (headless browser of the report test, tests/test_reports_browser.py).
#   usage: scripts/install_system.sh        (as root; quick when they are installed; else a no-op)
# Without root or apt-get the SLURM tests skip with that reason (tests/test_hpc_slurm.py).
set -euo pipefail
packages=(slurmctld slurmd slurm-client munge chromium)  # chromium: the report test (headless screenshot)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install_system.sh: not root or no apt-get; ${missing[*]} not installed (SLURM and browser tests will skip)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
start=$SECONDS
if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "install_system.sh: installed ${missing[*]} in $((SECONDS - start)) s"
else
  echo "install_system.sh: WARNING: apt-get could not install ${missing[*]} (SLURM tests will skip)" >&2
fi
