#!/usr/bin/env bash
# A single-node SLURM on this machine, from Debian's packages, for running the workflow through
# profiles/slurm (and for CI / the SLURM tests).
#
#   bash scripts/slurm-local.sh up       # install slurm-wlm + munge if missing, configure, start, wait for idle
#   bash scripts/slurm-local.sh status   # daemons, node and queue
#   bash scripts/slurm-local.sh down     # cancel every job, stop every daemon `up` started, unlink /etc/slurm/slurm.conf
#   bash scripts/slurm-local.sh env      # the SLURM_CONF export for another shell (eval "$(... env)")
#
# Everything lives under $SLURM_LOCAL_DIR (default /tmp/rmnet-slurm): slurm.conf, a private munge key
# and socket, state, spool, pid files and daemon logs (log/). Nothing under /etc is changed, except a
# symlink /etc/slurm/slurm.conf -> $SLURM_LOCAL_DIR/slurm.conf made only when no slurm.conf exists
# there (so that plain `sbatch` works), and removed by `down`; and, while apt-get installs the packages,
# a /usr/sbin/policy-rc.d (where none exists) that keeps their postinst from starting system daemons.
#
# Job states: no accounting (no slurmdbd / MariaDB). snakemake-executor-plugin-slurm is run with
# `--slurm-status-command squeue` (set in profiles/slurm), which reads finished jobs from slurmctld as
# long as it keeps them: MinJobAge=3600 s, far above the plugin's longest status interval (180 s) and
# its own squeue threshold (3 x the first status interval). See README "Running on a cluster".
#
# Settings (environment): SLURM_LOCAL_DIR, SLURM_LOCAL_PARTITION (debug), SLURM_LOCAL_CPUS (nproc),
# SLURM_LOCAL_MEM_MB (90 % of the machine's memory), SLURM_LOCAL_PORT (6817; slurmd uses port + 1).
# Needs root (apt-get, daemons running as root). Exit status: 0 ok, 1 failure, 2 usage error.
set -euo pipefail

STATE=${SLURM_LOCAL_DIR:-/tmp/rmnet-slurm}
PARTITION=${SLURM_LOCAL_PARTITION:-debug}
PORT=${SLURM_LOCAL_PORT:-6817}
CONF=$STATE/slurm.conf
SOCKET=$STATE/run/munge.socket
ETC_LINK=/etc/slurm/slurm.conf
MARKER="# written by scripts/slurm-local.sh"
export SLURM_CONF=$CONF

say() { printf 'slurm-local: %s\n' "$*"; }
die() { printf 'slurm-local: error: %s\n' "$*" >&2; exit 1; }

alive() {  # alive PIDFILE: the process of a pid file is running
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
  local missing=()
  command -v slurmctld > /dev/null || missing+=(slurmctld)
  command -v slurmd > /dev/null || missing+=(slurmd)
  command -v sbatch > /dev/null || missing+=(slurm-client)
  command -v munged > /dev/null || missing+=(munge)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "installing ${missing[*]} needs root (apt-get)"
  command -v apt-get > /dev/null || die "no apt-get: install ${missing[*]} (SLURM, MUNGE) with this system's package manager"
  say "installing slurm-wlm munge (Debian packages)"
  # The packages' postinst would start system-wide daemons; a temporary policy-rc.d stops that, so that
  # every daemon of this cluster is one this script starts (and `down` stops).
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local status=0
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge; } \
    > "${TMPDIR:-/tmp}/slurm-local-apt.log" 2>&1 || status=$?
  [ "$made_policy" -eq 1 ] && rm -f "$policy"
  [ "$status" -eq 0 ] || { tail -20 "${TMPDIR:-/tmp}/slurm-local-apt.log" >&2; die "apt-get install slurm-wlm munge failed"; }
}

machine_memory_mb() {  # the memory this machine (or its cgroup) may use, in MiB
  local total limit
  total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  for file in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
    if [ -r "$file" ]; then
      limit=$(cat "$file")
      if [ "$limit" != max ] && [ "$limit" -lt $((total * 1024 * 1024)) ] 2>/dev/null; then
        total=$((limit / 1024 / 1024))
      fi
    fi
  done
  echo "$total"
}

gpu_count() {
  if command -v nvidia-smi > /dev/null; then nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true; else echo 0; fi
}

write_config() {
  local host cpus mem gpus gres=""
  host=$(hostname -s)
  cpus=${SLURM_LOCAL_CPUS:-$(nproc)}
  # 10 % stays with the OS and the Snakemake scheduler that submits the jobs
  mem=${SLURM_LOCAL_MEM_MB:-$(( $(machine_memory_mb) * 9 / 10 ))}
  gpus=$(gpu_count)
  if [ "$gpus" -gt 0 ]; then
    gres=" Gres=gpu:$gpus"
    printf '%s\nName=gpu File=/dev/nvidia[0-%d]\n' "$MARKER" $((gpus - 1)) > "$STATE/gres.conf"
  fi
  cat > "$CONF" <<EOF
$MARKER: a one-node cluster on $host; stop it with scripts/slurm-local.sh down
ClusterName=rmnet-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# linuxproc: tracks a job's processes by parentage, so it needs no cgroup setup (containers, VMs
# without systemd); scancel still reaches every process of the job, torchrun's workers included
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no accounting: job states come from slurmctld (squeue), kept for MinJobAge seconds after a job ends
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=3600
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
KillWait=10
# the node is what this file says (CPUs, memory), even where the hardware reports more
SlurmdParameters=config_overrides
${gres:+GresTypes=gpu}
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem$gres State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=$((mem / cpus))
EOF
  say "slurm.conf: node $host, $cpus CPUs, $mem MB, $gpus GPUs, partition $PARTITION (default)"
}

cluster_up() {
  alive "$STATE/run/slurmctld.pid" && alive "$STATE/run/slurmd.pid" && sinfo -h > /dev/null 2>&1
}

up() {
  if cluster_up; then
    say "already up ($CONF)"
    status
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || die "the daemons run as root: run this as root"
  install_packages
  if [ -e "$ETC_LINK" ] && [ ! -L "$ETC_LINK" ] && ! grep -q "$MARKER" "$ETC_LINK"; then
    say "note: $ETC_LINK belongs to another SLURM; use SLURM_CONF=$CONF for this cluster"
  fi
  down_quiet  # leftovers of an earlier, interrupted run
  local others
  others=$(for name in slurmctld slurmd slurmstepd; do pgrep -x "$name" || true; done | tr '\n' ' ')
  [ -z "$others" ] || die "another SLURM runs on this machine (pids $others): use it, or stop it first"
  rm -rf "$STATE"
  mkdir -p "$STATE"/{munge,run,log,ctld,spool}
  chmod 755 "$STATE" "$STATE/run"  # munged wants its socket's directories searchable by all
  chmod 700 "$STATE/munge"
  write_config

  mungekey --create --keyfile="$STATE/munge/munge.key" > /dev/null
  munged --socket="$SOCKET" --key-file="$STATE/munge/munge.key" --pid-file="$STATE/run/munged.pid" \
    --seed-file="$STATE/munge/munged.seed" --log-file="$STATE/log/munged.log" \
    || die "munged did not start (see $STATE/log/munged.log)"
  munge -n -S "$SOCKET" | unmunge -S "$SOCKET" > /dev/null || die "munge credentials do not round-trip"

  slurmctld -f "$CONF" -c -i || die "slurmctld did not start (see $STATE/log/slurmctld.log)"
  slurmd -f "$CONF" || die "slurmd did not start (see $STATE/log/slurmd.log)"
  if [ ! -e "$ETC_LINK" ]; then
    mkdir -p "$(dirname "$ETC_LINK")" && ln -s "$CONF" "$ETC_LINK"
  fi

  local node state deadline=$((SECONDS + 90))
  node=$(hostname -s)
  while :; do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
    case "$state" in
      idle) break ;;
      down*|drain*|unknown*) scontrol update NodeName="$node" State=RESUME > /dev/null 2>&1 || true ;;
    esac
    [ $SECONDS -lt $deadline ] || { tail -5 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2;
                                    die "node $node is '$state', not idle, after 90 s"; }
    sleep 1
  done
  say "up: node $node idle; SLURM_CONF=$CONF"
  say "tear it down with: bash scripts/slurm-local.sh down"
}

stop_pid() {  # stop_pid PIDFILE NAME: SIGTERM, then SIGKILL after 20 s
  local file=$1 name=$2 pid
  alive "$file" || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name ($pid) ignored SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
  say "stopped $name ($pid)"
}

down_quiet() {
  [ -d "$STATE" ] || return 0
  if alive "$STATE/run/slurmctld.pid"; then
    # cancel every job first, so that no job step (slurmstepd) outlives slurmd
    scancel --full --quiet --partition="$PARTITION" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while [ -n "$(squeue -h -t RUNNING,COMPLETING,PENDING -o %i 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do
      sleep 1
    done
  fi
  stop_pid "$STATE/run/slurmd.pid" slurmd
  stop_pid "$STATE/run/slurmctld.pid" slurmctld
  stop_pid "$STATE/run/munged.pid" munged
  if [ -L "$ETC_LINK" ] && [ "$(readlink "$ETC_LINK")" = "$CONF" ]; then rm -f "$ETC_LINK"; fi
}

down() {
  down_quiet
  local left=()
  mapfile -t left < <(pgrep -x slurmstepd || true)
  if [ ${#left[@]} -gt 0 ]; then  # steps of this cluster's jobs: `up` refuses to start beside another slurmd
    say "job steps still running after slurmd stopped: ${left[*]}; killing them"
    kill -KILL "${left[@]}" 2>/dev/null || true
  fi
  say "down (state and daemon logs kept in $STATE/log until the next 'up')"
}

status() {
  local name rc=0
  for name in munged slurmctld slurmd; do
    if alive "$STATE/run/$name.pid"; then say "$name running (pid $(cat "$STATE/run/$name.pid"))"
    else say "$name not running"; rc=1; fi
  done
  if [ "$rc" -eq 0 ]; then
    sinfo -N -o '%N %P %T %c %m %G'
    squeue -o '%i %j %T %M %R'
  fi
  return "$rc"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
