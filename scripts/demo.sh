#!/usr/bin/env bash
# Install qmriprep, write the built-in synthetic demo dataset and run qmriprep on it.
#   usage: scripts/demo.sh [DEMO_DIR]     (default: ./demo)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${QMRIPREP_VENV:-$here/.venv}"
demo="$(mkdir -p "${1:-$here/demo}" && cd "${1:-$here/demo}" && pwd)"
bash "$here/scripts/install.sh"
"$venv/bin/python" -m qmriprep.synth --demo --overwrite "$demo/bids"
"$venv/bin/qmriprep" "$demo/bids" "$demo/derivatives" participant \
  --work-dir "$demo/work" --nprocs 2 --omp-nthreads 1 --estimators mese:varpro,loglinear vfa:nlls,linear \
  --recon zsssl cgsense --recon-epochs 10 --recon-steps 10 --nn-no-noise-match
echo
echo "Demo finished."
echo "  maps:    $demo/derivatives/sub-01/anat and $demo/derivatives/sub-01/fmap"
echo "  report:  $demo/derivatives/sub-01.html"
echo "  truth:   $demo/bids/derivatives/truth"
