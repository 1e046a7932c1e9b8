#!/usr/bin/env bash
# A real SLURM cluster on this machine (one node, or several), to try the SLURM launcher and to test it in CI.
#
#   scripts/slurm_local.sh start    # write a config, start slurmctld + slurmd(s), wait for idle nodes
#   eval "$(scripts/slurm_local.sh env)"   # export SLURM_CONF so sbatch/squeue/scancel find the cluster
#   scaling sweep run configs/sweeps/lr_seeds.yaml --launcher slurm
#   scripts/slurm_local.sh status   # daemons and the nodes' states
#   scripts/slurm_local.sh stop     # stop the daemons by their recorded PIDs, remove what start made
#
# Needs Debian's/Ubuntu's `slurmctld slurmd slurm-client` (apt-get install -y --no-install-recommends ...)
# and root (slurmd starts jobs as their user). No systemd, munge, cgroups or accounting database:
# authentication is auth/none, so only use this on a machine you trust, never on a shared network.
#
# Settings (environment): SLURM_LOCAL_DIR (state, logs, config; default /tmp/slurm-local),
# SLURM_LOCAL_NODES (nodes; default 1), SLURM_LOCAL_CPUS (CPUs each node offers; default nproc, may exceed
# it), SLURM_LOCAL_PORT (slurmctld port, slurmd uses the next one; default 6817), SLURM_LOCAL_SUBNET (several
# nodes: the first three numbers of their private /24; default derived from SLURM_LOCAL_DIR).
#
# One node is `localhost` (127.0.0.1). Several nodes are node1..nodeN, each slurmd in its own network and
# UTS namespace (its own hostname and address), all joined by a bridge that also carries the controller's
# address <subnet>.1; node i is <subnet>.(10+i). Each slurmd sees $SLURM_LOCAL_DIR/hosts as /etc/hosts (a
# bind mount in its own mount namespace) naming every node, so a job's ranks find each other by the
# hostnames SLURM lists (MASTER_ADDR for torch.distributed); the machine's own /etc/hosts is not touched.
# The interface and namespace names start with a tag derived from SLURM_LOCAL_DIR, so two clusters on one
# machine do not meet, and `stop` removes exactly what `start` recorded in $SLURM_LOCAL_DIR/created.
#
# Pitfalls this script takes care of:
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
NODES="${SLURM_LOCAL_NODES:-1}"
CREATED="$DIR/created"  # one line per thing start made outside $DIR: "netns NAME" or "link NAME"

die() { echo "slurm_local.sh: $*" >&2; exit 1; }

[[ "$NODES" =~ ^[1-9][0-9]?$ ]] || die "SLURM_LOCAL_NODES=$NODES: give a number of nodes from 1 to 99"

# a short tag and a private /24 of this cluster, both from its dir (names of links: at most 15 characters)
HASH=$(printf '%s' "$(realpath -m "$DIR")" | md5sum | cut -c1-6)
TAG="sl${HASH:0:5}"
SUBNET="${SLURM_LOCAL_SUBNET:-10.$(( 200 + 0x${HASH:0:2} % 50 )).$(( 0x${HASH:2:2} ))}"
CTL_ADDR="$SUBNET.1"

node_names() { if [[ $NODES == 1 ]]; then echo localhost; else seq -f 'node%g' 1 "$NODES"; fi; }

pid_files() {  # every daemon's PID file, controller last
  local n
  for n in $(node_names); do echo "$DIR/slurmd-$n.pid"; done
  echo "$DIR/slurmctld.pid"
}

alive_file() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

any_alive() {
  local f
  for f in "$DIR"/slurmctld.pid "$DIR"/slurmd-*.pid; do alive_file "$f" && return 0; done
  return 1
}

write_conf() {
  local cpus mem_mb i name ctl_host
  cpus="${SLURM_LOCAL_CPUS:-$(nproc)}"
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 / NODES ))
  ctl_host=localhost
  [[ $NODES == 1 ]] || ctl_host="localhost($CTL_ADDR)"
  mkdir -p "$DIR/state" "$DIR/log"
  for name in $(node_names); do mkdir -p "$DIR/spool/$name"; done
  cat > "$CONF" <<EOF
# Written by scripts/slurm_local.sh: a cluster of $NODES node(s) on one machine.
ClusterName=local
SlurmctldHost=$ctl_host
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
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.daemon.pid
SlurmdPidFile=$DIR/slurmd-%n.daemon.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
EOF
  if [[ $NODES == 1 ]]; then
    echo "NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN" >> "$CONF"
  else
    for i in $(seq 1 "$NODES"); do
      echo "NodeName=node$i NodeAddr=$SUBNET.$((10 + i)) CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN" \
        >> "$CONF"
    done
  fi
  echo "PartitionName=debug Nodes=$(node_names | paste -sd,) Default=YES MaxTime=INFINITE State=UP" >> "$CONF"
}

# --- several nodes: a bridge in this namespace, one network namespace per node --------------------------

make_network() {
  local i ns host_if node_if hosts
  command -v ip >/dev/null && command -v unshare >/dev/null && command -v nsenter >/dev/null \
    || die "several nodes need \`ip\` (iproute2), \`unshare\` and \`nsenter\` (util-linux)"
  ip link show "${TAG}br" >/dev/null 2>&1 && die "${TAG}br exists: a cluster of $DIR runs; stop it first"
  : > "$CREATED"
  ip link add "${TAG}br" type bridge && echo "link ${TAG}br" >> "$CREATED"
  ip addr add "$CTL_ADDR/24" dev "${TAG}br"
  ip link set "${TAG}br" up
  hosts=$(echo "127.0.0.1 localhost"
          for i in $(seq 1 "$NODES"); do echo "$SUBNET.$((10 + i)) node$i"; done)
  for i in $(seq 1 "$NODES"); do
    ns="${TAG}n$i" host_if="${TAG}h$i" node_if="${TAG}p$i"
    ip netns add "$ns" && echo "netns $ns" >> "$CREATED"
    ip link add "$host_if" type veth peer name "$node_if" && echo "link $host_if" >> "$CREATED"
    ip link set "$node_if" netns "$ns"
    ip link set "$host_if" master "${TAG}br"
    ip link set "$host_if" up
    ip -n "$ns" addr add "$SUBNET.$((10 + i))/24" dev "$node_if"
    ip -n "$ns" link set "$node_if" up
    ip -n "$ns" link set lo up
  done
  echo "$hosts" > "$DIR/hosts"  # the nodes' /etc/hosts, mounted over it in each node's own mount namespace
}

remove_network() {  # only what start recorded, last made first
  local kind name
  [[ -f "$CREATED" ]] || return 0
  tac "$CREATED" | while read -r kind name; do
    case "$kind" in
      netns) ip netns del "$name" 2>/dev/null || true ;;
      link) ip link del "$name" 2>/dev/null || true ;;
    esac
  done
  rm -f "$CREATED"
}

start_slurmd() {  # $1 node name, $2 its index (0 for the one-node cluster)
  local name=$1 i=$2
  if [[ $i == 0 ]]; then
    nohup slurmd -D -N "$name" -f "$CONF" > "$DIR/log/slurmd-$name.out" 2>&1 &
  else  # nsenter, unshare and sh exec in turn, so $! is slurmd's PID; /sys stays the machine's (cgroups)
    nohup nsenter --net="/run/netns/${TAG}n$i" unshare --uts --mount sh -c \
      'hostname "$1" && mount --bind "$2" /etc/hosts && exec slurmd -D -N "$1" -f "$3"' \
      sh "$name" "$DIR/hosts" "$CONF" > "$DIR/log/slurmd-$name.out" 2>&1 &
  fi
  echo $! > "$DIR/slurmd-$name.pid"
}

start() {
  local i name idle state f
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    || die "slurmctld/slurmd/sbatch not found; apt-get install -y --no-install-recommends slurmctld slurmd slurm-client"
  [[ $(id -u) == 0 ]] || die "needs root (slurmd starts jobs as their user)"
  if any_alive; then
    echo "already running (stop it first): $DIR"; return 0
  fi
  remove_network  # left over from a start that was killed before its stop
  mkdir -p "$DIR"
  write_conf
  export SLURM_CONF="$CONF"
  [[ $NODES == 1 ]] || make_network
  # -D: stay in the foreground (no systemd); -c: forget old jobs; -i: ignore stale state
  nohup slurmctld -D -c -i -f "$CONF" > "$DIR/log/slurmctld.out" 2>&1 &
  echo $! > "$DIR/slurmctld.pid"
  if [[ $NODES == 1 ]]; then
    start_slurmd localhost 0
  else
    for i in $(seq 1 "$NODES"); do start_slurmd "node$i" "$i"; done
  fi
  for _ in $(seq 1 60); do
    state=$(sinfo -h -N -o '%N %T' 2>/dev/null || true)
    idle=$(awk '$2 ~ /^(idle|mixed|allocated)/' <<< "$state" | wc -l)
    if [[ $idle == "$NODES" ]]; then
      echo "SLURM is up: $NODES node(s) $(node_names | paste -sd' '); config $CONF"
      echo "run: export SLURM_CONF=$CONF"
      return 0
    fi
    for f in $(pid_files); do
      alive_file "$f" || die "$(basename "$f" .pid) exited; see $DIR/log/"
    done
    sleep 0.5
  done
  die "the nodes did not become idle in 30 s (states: ${state:-unknown}); see $DIR/log/"
}

stop() {
  local f pid
  if alive_file "$DIR/slurmctld.pid"; then  # end this cluster's jobs first, so no job step outlives its node
    SLURM_CONF="$CONF" scancel --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 1 40); do
      [[ -z $(SLURM_CONF="$CONF" squeue -h -t running,completing 2>/dev/null) ]] && break
      sleep 0.25
    done
  fi
  for f in "$DIR"/slurmd-*.pid "$DIR"/slurmctld.pid; do  # nodes first, controller last
    [[ -f "$f" ]] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
  remove_network
  echo "stopped ($DIR)"
}

status() {
  local f ok=0
  for f in $(pid_files); do
    if alive_file "$f"; then echo "$(basename "$f" .pid): running (pid $(cat "$f"))"
    else echo "$(basename "$f" .pid): stopped"; ok=1; fi
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
