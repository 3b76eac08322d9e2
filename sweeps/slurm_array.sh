#!/bin/bash
# One sweep worker per node, all sharing one Optuna storage: submit as a SLURM job array.
#
#   DATA=/shared/optimetal STORAGE=... sbatch --array=0-7 sweeps/slurm_array.sh   # 8 nodes
#   then, once all tasks ended (e.g. sbatch --dependency=afterany:JOBID), the report below.
#
# Every array task runs `lightning-dielectric sweep run` on its node with one trial per GPU
# (--workers = GPUs on the node, each trial pinned with CUDA_VISIBLE_DEVICES). The workers claim
# grid points atomically in the shared storage, so no point is trained twice; a task that hits
# its time limit or is pre-empted gets SIGTERM (see --signal below), stops its trials and marks
# them interrupted; resubmitting the array resumes every unfinished trial from its last.ckpt.
# A node that dies without a signal is noticed after `grace_period` seconds without heartbeat.
#
# Storage (set STORAGE before sbatch, or edit the default):
#   PostgreSQL: STORAGE=postgresql+psycopg2://USER@DBHOST:5432/DBNAME
#               (pip install -e ".[postgres]"; one database for any number of workers); the
#               password goes in ~/.pgpass (DBHOST:5432:DBNAME:USER:PASSWORD, mode 0600), which
#               every node reads, not in the URL or the job script (docs/sweeps.md)
#   Journal:    STORAGE=journal:/shared/fs/runs/paper/optuna.journal
#               (a file on a shared filesystem; no server; fine for tens of workers)
# Run directories, checkpoints and TensorBoard logs go to the sweep's `out` (shared FS), and
# the dataset must be readable from every node (DATA). Nodes need synchronised clocks (NTP).
#
#SBATCH --job-name=ld-sweep
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --signal=B:TERM@300
#SBATCH --output=runs/slurm/%x-%A_%a.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"

SWEEP=${SWEEP:-sweeps/paper.yaml}
DATA=${DATA:?set DATA to the ingested dataset directory (lightning-dielectric data ingest)}
STORAGE=${STORAGE:-journal:$PWD/runs/paper/optuna.journal}
GPUS=${SLURM_GPUS_ON_NODE:-$(nvidia-smi -L | wc -l)}

# `exec` so the batch shell's SIGTERM reaches the driver, which stops its trials cleanly.
# The report (export + scaling-law fits) is left to one final step once all tasks are done:
#   lightning-dielectric sweep export "$SWEEP" --storage "$STORAGE"
#   lightning-dielectric laws fit runs/paper/runs.parquet --out runs/paper/report
exec .venv/bin/lightning-dielectric sweep run "$SWEEP" --storage "$STORAGE" --data "$DATA" \
  --workers "$GPUS" --no-report
