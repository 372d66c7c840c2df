#!/usr/bin/env bash
# The whole run in PBS: the s1tiling driver in one small, long batch job, its dask workers in batch
# jobs it submits itself (the request file says [Cluster] scheduler = pbs, see docs/cluster.md).
#
#   qsub -v CONFIG=/abs/path/S1Processor.cfg,S1TILING_VENV=/abs/path/venv examples/pbs_driver.sh
#
# PBS sends SIGTERM when the job is deleted (qdel) or reaches its walltime: s1tiling then stops
# cleanly (exit 78), deletes its worker jobs and removes its temporary files.
# Not run in our tests (PBS is not packaged for Debian): tests/test_cluster_end_to_end.py checks its text;
# its SLURM twin, examples/slurm_driver.sh, is run there on a real SLURM.
#
#PBS -N s1tiling-driver
#PBS -l select=1:ncpus=1:mem=4gb
#PBS -l walltime=48:00:00
#PBS -j oe

set -euo pipefail

: "${CONFIG:?pass -v CONFIG=/abs/path/S1Processor.cfg}"
cd "${PBS_O_WORKDIR:-.}"
if [ -n "${S1TILING_VENV:-}" ]; then
    # shellcheck disable=SC1091
    source "$S1TILING_VENV/bin/activate"
fi
command -v s1tiling >/dev/null || { echo "s1tiling is not on the PATH (pass -v S1TILING_VENV=...)" >&2; exit 77; }

echo "s1tiling driver: job ${PBS_JOBID:-?} on $(hostname), request $CONFIG"
exec s1tiling "$CONFIG"
