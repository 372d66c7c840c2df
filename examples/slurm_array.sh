#!/usr/bin/env bash
# One s1tiling run per Sentinel-2 tile, or per date range, as a SLURM job array.
#
#   sbatch --array=1-N examples/slurm_array.sh tiles|dates CONFIG LIST
#
# LIST: 'tiles' -> one tile name per line; 'dates' -> 'FIRST_DATE LAST_DATE' per line.
# Line $SLURM_ARRAY_TASK_ID of LIST replaces S1TILING_TILES, or S1TILING_FIRST_DATE
# and S1TILING_LAST_DATE, which otherwise come from the submitting environment (the
# whole campaign). CONFIG refers to them as %(S1TILING_TILES)s... (see docs/cluster.md),
# and to S1TILING_NB_PROCESSES and S1TILING_RAM_PER_PROCESS, set here from the allocation.
# The job's exit status is s1tiling's: 0 success, 66 some tasks failed, ...
#
#SBATCH --job-name=s1tiling
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=40G
#SBATCH --time=04:00:00
#SBATCH --output=s1tiling-%A_%a.log

set -euo pipefail

split=${1:?usage: sbatch --array=1-N slurm_array.sh tiles|dates CONFIG LIST}
config=${2:?missing the request file}
list=${3:?missing the list of tiles or dates}

item=$(sed -n "${SLURM_ARRAY_TASK_ID}p" "$list")
[ -n "$item" ] || { echo "line $SLURM_ARRAY_TASK_ID of $list is empty" >&2; exit 72; }
case "$split" in
    tiles) export S1TILING_TILES=$item ;;
    dates) read -r S1TILING_FIRST_DATE S1TILING_LAST_DATE <<< "$item"
           export S1TILING_FIRST_DATE S1TILING_LAST_DATE ;;
    *)     echo "split by 'tiles' or 'dates', not '$split'" >&2; exit 72 ;;
esac

# One dask worker process per allocated core; 90% of the job's memory shared by them.
export S1TILING_NB_PROCESSES=${SLURM_CPUS_PER_TASK:-1}
export S1TILING_RAM_PER_PROCESS=$(( ${SLURM_MEM_PER_NODE:-4096} * 9 / 10 / S1TILING_NB_PROCESSES ))
export TMPDIR=${TMPDIR:-/tmp}

echo "s1tiling: tiles=${S1TILING_TILES:-?} dates=${S1TILING_FIRST_DATE:-?}..${S1TILING_LAST_DATE:-?}" \
     "processes=$S1TILING_NB_PROCESSES ram_per_process=${S1TILING_RAM_PER_PROCESS}MB"
exec s1tiling "$config"
