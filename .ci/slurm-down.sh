#!/usr/bin/env bash
# Stop the daemons .ci/slurm-up.sh started (listed in $STATE/started), by the pids they recorded.
set -uo pipefail
STATE=${BENCH_SLURM_STATE:-/var/lib/bench-slurm}
stop() {  # pid file, name
  grep -qx "$2" "$STATE/started" 2>/dev/null || return 0  # not ours to stop
  [ -s "$1" ] || return 0
  local pid; pid=$(cat "$1")
  [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ] || return 0  # gone, or the pid was reused
  kill "$pid"
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
}
stop "$STATE/slurmd.pid" slurmd
stop "$STATE/slurmctld.pid" slurmctld
stop /run/munge/munged.pid munged
rm -f "$STATE/started"
