#!/usr/bin/env bash
# Stop the daemons that .ci/slurm/up.sh started, using the pid files it left
# in the state dir (never by process name). A munged that up.sh found already
# running has no pid file there and is left alone.
#
#   SLURM_STATE_DIR  as for up.sh (default /tmp/hkt-slurm)
#   --purge          also delete the state dir (saved jobs, logs) afterwards
set -euo pipefail

STATE=${SLURM_STATE_DIR:-/tmp/hkt-slurm}

stop() {  # stop <name> <pidfile>: SIGTERM, wait up to 20 s, then SIGKILL
  local name=$1 pidfile=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  # Guard against a stale pid file whose pid was reused by something else.
  if kill -0 "$pid" 2>/dev/null && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ]; then
    kill -TERM "$pid"
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "down.sh: $name ($pid) ignored SIGTERM, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
    echo "down.sh: stopped $name ($pid)"
  fi
  rm -f "$pidfile"
}

# Cancel leftover jobs first: their slurmstepd/job processes would otherwise
# outlive slurmd. This cluster is private to up.sh, so all jobs are ours.
if [ -s "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; then
  jobs=$(squeue -h -o %i 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 30); do
      [ -z "$(squeue -h -t running,completing,configuring -o %i 2>/dev/null)" ] && break
      sleep 1
    done
  fi
fi

# slurmd, then the controller, then munge (both talk to it while stopping).
stop slurmd "$STATE/slurmd.pid"
stop slurmctld "$STATE/slurmctld.pid"
stop munged "$STATE/munge/munged.pid"

if [ "${1:-}" = --purge ]; then
  rm -rf "$STATE"
  echo "down.sh: removed $STATE"
fi
