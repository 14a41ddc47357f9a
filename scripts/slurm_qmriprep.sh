#!/bin/bash
#SBATCH --job-name=qmriprep
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
# qmriprep on SLURM. An array task runs one subject: task i takes the (i+1)-th participant_id of
# BIDS_DIR/participants.tsv. A job without an array index runs the group level.
# scripts/slurm_submit.sh submits both (the group level waits for every subject).
#   usage: sbatch --array=0-N scripts/slurm_qmriprep.sh BIDS_DIR OUTPUT_DIR WORK_DIR [QMRIPREP OPTIONS]
# (options given override the defaults below, e.g. --omp-nthreads 4 for one node at a time with 4 threads)
# Command: $QMRIPREP if set (e.g. the qmriprep of a venv), else the Apptainer image $QMRIPREP_SIF run
# with --cleanenv --containall and the three folders bound at their own paths. WORK_DIR must be on
# a file system the compute nodes see (it holds the caches, see README "Containers and HPC").
set -euo pipefail
bids=$(realpath "$1") out=$(realpath -m "$2") work=$(realpath -m "$3")
shift 3
mkdir -p "$out" "$work"
if [ -n "${QMRIPREP:-}" ]; then
  read -r -a cmd <<< "$QMRIPREP"
else
  cmd=(apptainer run --cleanenv --containall -B "$bids:$bids:ro" -B "$out" -B "$work"
       "${QMRIPREP_SIF:?set QMRIPREP_SIF (the image) or QMRIPREP (the command)}")
fi
if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
  exec "${cmd[@]}" "$bids" "$out" group -w "$work"
fi
subject=$(awk -F'\t' 'NR > 1 && $1 != "" {print $1}' "$bids/participants.tsv" |
          sed -n "$((SLURM_ARRAY_TASK_ID + 1))p")
if [ -z "$subject" ]; then
  echo "no participant number $((SLURM_ARRAY_TASK_ID + 1)) in $bids/participants.tsv" >&2
  exit 65
fi
cpus=${SLURM_CPUS_PER_TASK:-1}
mem_mb=${SLURM_MEM_PER_NODE:-$(( ${SLURM_MEM_PER_CPU:-2048} * cpus ))}
exec "${cmd[@]}" "$bids" "$out" participant --participant-label "${subject#sub-}" -w "$work" \
  --nprocs "$cpus" --omp-nthreads 1 --mem "$(( mem_mb / 1024 ))" "$@"
