#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, to try the SLURM launcher and to test it in CI.
#
#   scripts/slurm_local.sh start    # write a config, start slurmctld + slurmd, wait until the node is idle
#   eval "$(scripts/slurm_local.sh env)"   # export SLURM_CONF so sbatch/squeue/scancel find the cluster
#   scaling sweep run configs/sweeps/lr_seeds.yaml --launcher slurm
#   scripts/slurm_local.sh status   # daemons and the node's state
#   scripts/slurm_local.sh stop     # stop both daemons by their recorded PIDs
#
# Needs Debian's/Ubuntu's `slurmctld slurmd slurm-client` (apt-get install -y --no-install-recommends ...)
# and root (slurmd starts jobs as their user). No systemd, munge, cgroups or accounting database:
# authentication is auth/none, so only use this on a machine you trust, never on a shared network.
#
# Settings (environment): SLURM_LOCAL_DIR (state, logs, config; default /tmp/slurm-local),
# SLURM_LOCAL_CPUS (CPUs the node offers; default nproc, may exceed it), SLURM_LOCAL_PORT (slurmctld
# port, slurmd uses the next one; default 6817).
#
# Pitfalls this script takes care of (see also ../shared/FACTS.md):
# - A fresh state dir restarts job ids at 1 and submitit would read an old job's result from a reused
#   folder: FirstJobId is taken from the clock, and the launcher uses a fresh submitit folder per submission.
# - Without accounting `sacct` does not work; the launcher reads job states from `squeue -t all`, which
#   keeps a finished or cancelled job for MinJobAge seconds; after that a job the launcher cannot find
#   and whose run has no result counts as failed.
# - A requeued job waits ~120 s before it may start again; `scontrol update jobid=N StartTime=now+2` skips
#   that. Not `now`: a job restarted within the second of its requeue is killed ("Job credential revoked").
# - Daemons are stopped by PID, never by name, so other clusters or users on the machine are left alone.
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/slurm-local}"
CONF="$DIR/slurm.conf"
PORT="${SLURM_LOCAL_PORT:-6817}"

die() { echo "slurm_local.sh: $*" >&2; exit 1; }

alive() { [[ -f "$DIR/$1.pid" ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

write_conf() {
  local cpus mem_mb
  cpus="${SLURM_LOCAL_CPUS:-$(nproc)}"
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
  cat > "$CONF" <<EOF
# Written by scripts/slurm_local.sh: a one-node cluster on localhost.
ClusterName=local
SlurmctldHost=localhost
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
FirstJobId=$(( $(date +%s) % 50000000 + 1000 ))
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.daemon.pid
SlurmdPidFile=$DIR/slurmd.daemon.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    || die "slurmctld/slurmd/sbatch not found; apt-get install -y --no-install-recommends slurmctld slurmd slurm-client"
  if alive slurmctld || alive slurmd; then
    echo "already running (stop it first): $DIR"; return 0
  fi
  write_conf
  export SLURM_CONF="$CONF"
  # -D: stay in the foreground (no systemd); -c: forget old jobs; -i: ignore stale state
  nohup slurmctld -D -c -i -f "$CONF" > "$DIR/log/slurmctld.out" 2>&1 &
  echo $! > "$DIR/slurmctld.pid"
  nohup slurmd -D -N localhost -f "$CONF" > "$DIR/log/slurmd.out" 2>&1 &
  echo $! > "$DIR/slurmd.pid"
  for _ in $(seq 1 60); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
    if [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* ]]; then
      echo "SLURM is up: node localhost $state; config $CONF"
      echo "run: export SLURM_CONF=$CONF"
      return 0
    fi
    alive slurmctld || die "slurmctld exited; see $DIR/log/slurmctld.out and slurmctld.log"
    alive slurmd || die "slurmd exited; see $DIR/log/slurmd.out and slurmd.log"
    sleep 0.5
  done
  die "the node did not become idle in 30 s (state: ${state:-unknown}); see $DIR/log/"
}

stop() {
  local name pid
  for name in slurmd slurmctld; do
    [[ -f "$DIR/$name.pid" ]] || continue
    pid=$(cat "$DIR/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/$name.pid"
  done
  echo "stopped ($DIR)"
}

status() {
  local name ok=0
  for name in slurmctld slurmd; do
    if alive "$name"; then echo "$name: running (pid $(cat "$DIR/$name.pid"))"; else echo "$name: stopped"; ok=1; fi
  done
  if [[ $ok == 0 ]]; then SLURM_CONF="$CONF" sinfo -N -o "%N %T %C"; fi
  return $ok
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
