#!/usr/bin/env bash
# One s1tiling run per Sentinel-2 tile, or per date range, as a SLURM job array.
#
#   sbatch --array=1-N examples/slurm_array.sh tiles|dates CONFIG LIST
#
# SLURM passes the submitting environment to the job (S1TILING_TILES..., S1TILING_VENV or
# S1TILING_SIF and S1TILING_BINDS: see below).
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

# How s1tiling gets on the node's PATH: S1TILING_VENV (a virtual environment where it was
# pip-installed, on a shared file system), or S1TILING_SIF (an Apptainer image, with S1TILING_BINDS
# its -B list: the data folders, the request file and a writable tmp, see docker/README.md); else it
# must already be there (module load in ~/.bashrc, pip install --user...).
if [ -n "${S1TILING_SIF:-}" ]; then
    run=(apptainer run ${S1TILING_BINDS:+-B "$S1TILING_BINDS"} "$S1TILING_SIF")
else
    # shellcheck disable=SC1091
    [ -z "${S1TILING_VENV:-}" ] || source "$S1TILING_VENV/bin/activate"
    run=(s1tiling)
fi
command -v "${run[0]}" >/dev/null || {
    echo "${run[0]} is not on the PATH of $(hostname): pass S1TILING_VENV=/path/to/venv or S1TILING_SIF=/path/to/s1tiling.sif" >&2
    exit 77
}
exec "${run[@]}" "$config"
