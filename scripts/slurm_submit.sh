#!/bin/bash
# Submit qmriprep for every subject of a BIDS dataset (a SLURM array, one subject per task) and the
# group level as a job that starts once every subject succeeded. Prints the two job ids.
#   usage: scripts/slurm_submit.sh BIDS_DIR OUTPUT_DIR WORK_DIR [QMRIPREP OPTIONS]
# $SBATCH_OPTS: sbatch options for both jobs (e.g. "--partition=short --cpus-per-task=8 --mem=16G");
# $QMRIPREP or $QMRIPREP_SIF: the command (see slurm_qmriprep.sh). Job logs: WORK_DIR/slurm-logs/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bids=$(realpath "$1") out=$(realpath -m "$2") work=$(realpath -m "$3")
shift 3
n=$(awk -F'\t' 'NR > 1 && $1 != ""' "$bids/participants.tsv" | wc -l)
if [ "$n" -eq 0 ]; then
  echo "no participants in $bids/participants.tsv" >&2
  exit 65
fi
mkdir -p "$work/slurm-logs"
read -r -a opts <<< "${SBATCH_OPTS:-}"
array=$(sbatch --parsable "${opts[@]}" --array="0-$((n - 1))" --output="$work/slurm-logs/%x-%A_%a.out" \
        "$here/slurm_qmriprep.sh" "$bids" "$out" "$work" "$@")
array=${array%%;*}
group=$(sbatch --parsable "${opts[@]}" --dependency="afterok:$array" --job-name=qmriprep-group \
        --cpus-per-task=1 --mem=1G --output="$work/slurm-logs/%x-%j.out" \
        "$here/slurm_qmriprep.sh" "$bids" "$out" "$work")
echo "$array ${group%%;*}"
