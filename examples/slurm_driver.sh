#!/usr/bin/env bash
# The whole run in SLURM: the s1tiling driver in one small, long batch job, its dask workers in batch
# jobs it submits itself (the request file says [Cluster] scheduler = slurm, see docs/cluster.md).
#
#   sbatch examples/slurm_driver.sh /abs/path/S1Processor.cfg
#
# The driver needs one core and a few GiB; give it the walltime of the whole run (workers' jobs have
# their own [Cluster] walltime and are replaced when they reach it). 120 s before its own walltime,
# SLURM sends SIGTERM (--signal below): s1tiling then stops cleanly (exit 78), cancels its worker jobs
# and removes its temporary files; rerunning the same request produces only what is missing.
# Worker job logs: {output}/_WORKER_LOGS/<date>-<host>-<pid>/ (or [Cluster] log_directory).
#
# s1tiling must be on the PATH of the driver and of the workers: a virtual environment on a shared
# file system, activated here (S1TILING_VENV) and inherited by the worker jobs (sbatch --export=ALL,
# SLURM's default), or 'module load' lines in dask-jobqueue's job-script-prologue (docs/cluster.md).
#
#SBATCH --job-name=s1tiling-driver
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=4G
#SBATCH --time=2-00:00:00
#SBATCH --signal=B:TERM@120
#SBATCH --output=s1tiling-driver-%j.log

set -euo pipefail

config=${1:?usage: sbatch examples/slurm_driver.sh /abs/path/S1Processor.cfg}
if [ -n "${S1TILING_VENV:-}" ]; then
    # shellcheck disable=SC1091
    source "$S1TILING_VENV/bin/activate"
fi
command -v s1tiling >/dev/null || { echo "s1tiling is not on the PATH (set S1TILING_VENV)" >&2; exit 77; }

echo "s1tiling driver: job ${SLURM_JOB_ID:-?} on $(hostname), request $config"
# exec: SIGTERM (scancel, --signal, the walltime) reaches s1tiling itself; the job's exit status is its own
exec s1tiling "$config"
