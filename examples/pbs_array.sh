#!/usr/bin/env bash
# One s1tiling run per Sentinel-2 tile, or per date range, as a PBS Pro job array.
#
#   qsub -J 1-N -v SPLIT=tiles|dates,CONFIG=/abs/S1Processor.cfg,LIST=/abs/list.txt,\
#         S1TILING_TILES,S1TILING_FIRST_DATE,S1TILING_LAST_DATE,S1TILING_VENV examples/pbs_array.sh
#
# (-v NAME alone passes the submitting shell's value: PBS, unlike SLURM, passes no environment
# by default, so the campaign's S1TILING_* variables and S1TILING_VENV or S1TILING_SIF and
# S1TILING_BINDS must be listed.)
#
# LIST: 'tiles' -> one tile name per line; 'dates' -> 'FIRST_DATE LAST_DATE' per line.
# Line $PBS_ARRAY_INDEX of LIST replaces S1TILING_TILES, or S1TILING_FIRST_DATE and
# S1TILING_LAST_DATE, which otherwise come from the submitting environment (add them to
# -v, e.g. -v S1TILING_TILES,S1TILING_FIRST_DATE,...). CONFIG refers to them as
# %(S1TILING_TILES)s... (see docs/cluster.md), and to S1TILING_NB_PROCESSES and
# S1TILING_RAM_PER_PROCESS, set here from the allocation (keep MEM_MB equal to mem= below).
# Torque: use -t instead of -J and PBS_ARRAYID instead of PBS_ARRAY_INDEX.
#
#PBS -N s1tiling
#PBS -l select=1:ncpus=8:mem=40gb
#PBS -l walltime=04:00:00
#PBS -j oe

set -euo pipefail

MEM_MB=${MEM_MB:-40000}
: "${SPLIT:?pass -v SPLIT=tiles|dates}" "${CONFIG:?pass -v CONFIG=request file}" "${LIST:?pass -v LIST=list file}"
cd "${PBS_O_WORKDIR:-.}"

item=$(sed -n "${PBS_ARRAY_INDEX}p" "$LIST")
[ -n "$item" ] || { echo "line $PBS_ARRAY_INDEX of $LIST is empty" >&2; exit 72; }
case "$SPLIT" in
    tiles) export S1TILING_TILES=$item ;;
    dates) read -r S1TILING_FIRST_DATE S1TILING_LAST_DATE <<< "$item"
           export S1TILING_FIRST_DATE S1TILING_LAST_DATE ;;
    *)     echo "SPLIT is 'tiles' or 'dates', not '$SPLIT'" >&2; exit 72 ;;
esac

# One dask worker process per allocated core; 90% of the job's memory shared by them.
export S1TILING_NB_PROCESSES=${NCPUS:-1}
export S1TILING_RAM_PER_PROCESS=$(( MEM_MB * 9 / 10 / S1TILING_NB_PROCESSES ))
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
exec "${run[@]}" "$CONFIG"
