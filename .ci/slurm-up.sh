#!/usr/bin/env bash
# A one-node Slurm on this machine for tests/test_slurm.py: munged, slurmctld and slurmd, as root.
# Idempotent: exits 0 at once when the node already answers. Prints "started" on stdout when this
# call started the daemons (so the caller knows to stop them: .ci/slurm-down.sh), else "running".
# Needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge).
set -euo pipefail

STATE=${BENCH_SLURM_STATE:-/var/lib/bench-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by cifar-bench .ci/slurm-up.sh"

for tool in munged slurmctld slurmd sinfo sbatch; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin command -v "$tool" >/dev/null \
    || { echo "slurm-up: $tool is not installed (apt-get install slurm-wlm munge)" >&2; exit 2; }
done
export PATH=$PATH:/usr/sbin
[ "$(id -u)" = 0 ] || { echo "slurm-up: must run as root (the daemons and munge key need it)" >&2; exit 2; }

node_up() { sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)'; }
if node_up; then echo running; exit 0; fi

if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  echo "slurm-up: $CONF exists and is not ours; start that Slurm yourself" >&2; exit 2
fi

HOST=$(hostname -s)
mkdir -p "$STATE"/{ctld,spool,log}

# what this call starts is listed in $STATE/started, for .ci/slurm-down.sh to stop (and nothing else)
: > "$STATE/started"
# munge: a key, then the daemon as the munge user
if ! pgrep -x munged >/dev/null; then
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- munged
  echo munged >> "$STATE/started"
fi

cat > "$CONF" <<EOF
$MARK
ClusterName=bench
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
KillWait=30
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=$HOST CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

for d in slurmctld slurmd; do
  pgrep -x "$d" >/dev/null || { "$d" && echo "$d" >> "$STATE/started"; }
done
for _ in $(seq 60); do
  if node_up; then echo started; exit 0; fi
  sleep 0.5
done
echo "slurm-up: the node did not come up in 30 s; see $STATE/log/" >&2
sinfo >&2 || true
exit 1
