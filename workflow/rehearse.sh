#!/usr/bin/env bash
# `make rehearse`: the DAG of config/paper.yaml rehearsed on this machine before a cluster runs it
# (hkt.rehearse: every block, method, variant and stage at the real shapes, a few steps each, on
# generated stand-ins), through `--profile slurm` on the single-node SLURM that CI starts
# (.ci/slurm/up.sh; root), in a copy of the workflow under rehearsal/ (git-ignored) so that no
# result of another scale is touched. Writes results/rehearsal/jobs.csv and its summary.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WORK=rehearsal
started=$(date +%s)

bash .ci/slurm/up.sh
mkdir -p "$WORK/data" results/rehearsal
# -p: a rerun after an edit reruns only what the edit changes (copies newer than their outputs would
# rerun every job that reads them)
for item in Snakefile workflow config data/MANIFEST.yaml results/paper results/discrepancies.csv; do
  rm -rf "${WORK:?}/$item"; mkdir -p "$(dirname "$WORK/$item")"; cp -rp "$item" "$WORK/$item"
done
"$PY" -m hkt.rehearse config --paper config/paper.yaml --out "$PWD/$WORK/stand-ins" --cpus 1 --mem-mb 10000
cp "$WORK/stand-ins/config.yaml" "$WORK/rehearsal.yaml"

cd "$WORK"
# --keep-going: a failed job is a row of the report (status "missing"), not the end of the rehearsal.
# --jobs 6 on a node that runs two: SLURM starts a queued job the moment one ends, where Snakemake
# would notice the end only at its next status check (the interval grows by 10 s while none ends;
# with --jobs 2 the first rehearsal's jobs ended on 68 s and 110 s ticks)
status=0
HKT_STOP_ONCE="$(cat stand-ins/stop_once.txt)" "../$PY" -m snakemake --profile ../profiles/slurm \
  --configfile rehearsal.yaml --default-resources slurm_partition=cpu --jobs 6 --keep-going \
  --slurm-init-seconds-before-status-checks 2 --retries 1 > snakemake.log 2>&1 || status=$?
cd ..
"$PY" -m hkt.rehearse report --work "$WORK" --config "$WORK/rehearsal.yaml" --paper config/paper.yaml \
  --out results/rehearsal --seconds $(( $(date +%s) - started ))
if [ "$status" != 0 ]; then tail -n 60 "$WORK/snakemake.log"; echo "rehearse: the DAG failed (see $WORK/snakemake.log)"; exit "$status"; fi
