#!/usr/bin/env bash
# Start a real TWO-node Slurm cluster on this one machine, for multi-node tests:
#   one slurmctld (host network namespace) + two slurmd, each slurmd in its own
#   network namespace (ip netns) and UTS namespace (its own hostname), with its
#   own private address on a host-only bridge:
#
#     host   bridge $BRIDGE  $NET.1   slurmctld, munged, clients (sinfo/srun/sbatch/pytest)
#     netns  $NODE1 (eth0)   $NET.11  slurmd -N $NODE1, hostname $NODE1
#     netns  $NODE2 (eth0)   $NET.12  slurmd -N $NODE2, hostname $NODE2
#
# Loopback only: the bridge has no uplink, the namespaces have no default route,
# nothing is forwarded off the machine. Node names resolve everywhere through
# /etc/hosts lines tagged "# slurm-two-node" (removed by stop-two-node-cluster.sh)
# and, for Slurm itself, through NodeAddr in slurm.conf.
#
# Coexists with the one-node cluster of start-cluster.sh: its own directory,
# cluster name, ports, munged socket. Idempotent: if the daemons recorded under
# $SLURM_2NODE_DIR are alive it only re-runs the health check.
# Accounting: none (no slurmdbd); a squeue-based `sacct` stand-in goes first on PATH
# through env.sh, exactly as start-cluster.sh does with SLURM_LOCAL_ACCOUNTING=none.
#
# Needs root, iproute2 (`ip netns`, veth, bridge), util-linux `unshare`, and the
# packages start-cluster.sh installs (run it once, or apt-get install
# slurmctld slurmd slurm-client munge).
#
# Environment (all optional):
#   SLURM_2NODE_DIR        base dir for conf/state/logs/pids   [/tmp/slurm-2node]
#   SLURM_2NODE_CLUSTER    ClusterName                         [twonode]
#   SLURM_2NODE_PARTITION  partition name (default partition)  [debug]
#   SLURM_2NODE_NODES      the two node names                  ["slnode1 slnode2"]
#   SLURM_2NODE_NET        first three octets of the /24       [10.213.0]
#   SLURM_2NODE_BRIDGE     bridge name                         [s2nbr0]
#   SLURM_2NODE_CTLD_PORT / SLURM_2NODE_SLURMD_PORT            [6827 / 6828]
#   SLURM_2NODE_CRED_EXPIRE AuthInfo cred_expire (requeue delay, s) [10]
#   SLURM_2NODE_TIMEOUT    seconds to wait for both nodes to become usable [60]
#   SLURM_2NODE_INSTALL    1 = apt-get install missing packages [1]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${SLURM_2NODE_DIR:-/tmp/slurm-2node}"
CLUSTER="${SLURM_2NODE_CLUSTER:-twonode}"
PARTITION="${SLURM_2NODE_PARTITION:-debug}"
read -r NODE1 NODE2 <<<"${SLURM_2NODE_NODES:-slnode1 slnode2}"
NET="${SLURM_2NODE_NET:-10.213.0}"
BRIDGE="${SLURM_2NODE_BRIDGE:-s2nbr0}"
CTLD_PORT="${SLURM_2NODE_CTLD_PORT:-6827}"
SLURMD_PORT="${SLURM_2NODE_SLURMD_PORT:-6828}"
CRED_EXPIRE="${SLURM_2NODE_CRED_EXPIRE:-10}"
TIMEOUT="${SLURM_2NODE_TIMEOUT:-60}"
CTLD_ADDR="$NET.1"
NODES=("$NODE1" "$NODE2")
declare -A ADDR=(["$NODE1"]="$NET.11" ["$NODE2"]="$NET.12")
declare -A VETH=(["$NODE1"]="s2nv1" ["$NODE2"]="s2nv2")
HOSTS_TAG="# slurm-two-node"
CTLD_NAME="$(hostname -s)"             # slurmctld only starts where SlurmctldHost is this host's name

LOG_TAG=slurm-2node
# shellcheck source=common.sh
source "$HERE/common.sh"

[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces; slurmd launches jobs)"
[[ -n "$NODE1" && -n "$NODE2" && "$NODE1" != "$NODE2" ]] || die "SLURM_2NODE_NODES must name two different nodes"

# ---------------------------------------------------------------- 1. install
install_packages SLURM_2NODE_INSTALL "$SLURM_BINARIES" slurmctld slurmd slurm-client munge
for b in ip unshare nsenter; do command -v "$b" >/dev/null 2>&1 || die "$b not found (iproute2 / util-linux)"; done

mkdir -p "$DIR"/{etc,state,spool,log,run,pids,bin,munge}
chmod 0755 "$DIR" "$DIR"/{etc,state,spool,log,run,pids,bin,munge}
CONF="$DIR/etc/slurm.conf"
ENVFILE="$DIR/env.sh"
export SLURM_CONF="$CONF"
export PATH="$DIR/bin:$PATH"

# ---------------------------------------------------------------- 2. network
# Host-only bridge with the controller's address; one veth per node, its inner end
# called eth0 in the node's namespace (so GLOO_SOCKET_IFNAME=eth0 / NCCL_SOCKET_IFNAME=eth0
# work as on a real cluster). No default route in the namespaces: nothing leaves.
setup_network() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  [[ "$(ip -o addr show dev "$BRIDGE")" == *"inet $CTLD_ADDR/"* ]] || ip addr add "$CTLD_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local n ns v
  for n in "${NODES[@]}"; do
    ns="$n"; v="${VETH[$n]}"
    [[ -e "/var/run/netns/$ns" ]] || ip netns add "$ns"
    if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
      ip link del "$v" 2>/dev/null || true
      ip link add "$v" type veth peer name "${v}p"
      ip link set "${v}p" netns "$ns"
      ip -n "$ns" link set "${v}p" name eth0
    fi
    ip link set "$v" master "$BRIDGE"
    ip link set "$v" up
    [[ "$(ip -n "$ns" -o addr show dev eth0)" == *"inet ${ADDR[$n]}/"* ]] || ip -n "$ns" addr add "${ADDR[$n]}/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
  done
  # /etc/hosts: node names -> their addresses, for every namespace (gloo/NCCL rendezvous,
  # `scontrol show hostnames | head -1` as MASTER_ADDR). Rewritten in place (it may be a bind mount).
  local tmp; tmp="$(mktemp)"
  grep -v "$HOSTS_TAG\$" /etc/hosts > "$tmp" || true
  for n in "${NODES[@]}"; do printf '%s %s %s\n' "${ADDR[$n]}" "$n" "$HOSTS_TAG" >> "$tmp"; done
  cat "$tmp" > /etc/hosts; rm -f "$tmp"
}

# ---------------------------------------------------------------- 3. config
render_conf() {
  local hw get cpus boards sockets cores threads realmem defmem
  hw="$(slurmd -C | head -1)"
  get() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  cpus=$(get CPUs); boards=$(get Boards); sockets=$(get SocketsPerBoard)
  cores=$(get CoresPerSocket); threads=$(get ThreadsPerCore); realmem=$(get RealMemory)
  realmem=$(( realmem / 2 ))              # the two nodes share this machine's memory
  defmem=$(( realmem / cpus / 2 ))
  local hwline="CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$realmem"
  cat > "$CONF.new" <<EOF
# Two-node Slurm cluster on one machine (rendered by start-two-node-cluster.sh).
ClusterName=$CLUSTER
SlurmctldHost=$CTLD_NAME($CTLD_ADDR)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket.2,cred_expire=$CRED_EXPIRE
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
# %n = node name: the two slurmd share this filesystem
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$DIR/etc/plugstack.conf
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerParameters=sched_interval=2,batch_sched_delay=1,sched_min_interval=100000
DefMemPerCPU=$defmem
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
MessageTimeout=10
JobRequeue=1
NodeName=$NODE1 NodeAddr=${ADDR[$NODE1]} NodeHostname=$NODE1 $hwline State=UNKNOWN
NodeName=$NODE2 NodeAddr=${ADDR[$NODE2]} NodeHostname=$NODE2 $hwline State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE1,$NODE2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  mv "$CONF.new" "$CONF"
  : > "$DIR/etc/plugstack.conf"
  chmod 0644 "$CONF" "$DIR/etc/plugstack.conf"
}

write_env_and_shim() {
  cat > "$ENVFILE" <<EOF
# source this file to talk to the local two-node test cluster
export SLURM_CONF="$CONF"
export PATH="$DIR/bin:\$PATH"
EOF
  write_sacct_shim
}

# ---------------------------------------------------------------- 4. daemons
start_slurmd() {  # node
  local n="$1" pf="$DIR/pids/slurmd-$1.pid"
  if alive "$pf"; then log "slurmd $n already running (pid $(cat "$pf"))"; return; fi
  mkdir -p "$DIR/spool/$n"
  # nsenter --net, not `ip netns exec`: the latter remounts /sys, which hides /sys/fs/cgroup and
  # slurmd then refuses to start ("No filesystem mounted on /sys/fs/cgroup").
  # nsenter, unshare (no --fork) and sh all exec: $! is slurmd itself.
  nohup nsenter --net="/var/run/netns/$n" unshare --uts sh -c 'hostname "$1"; shift; exec "$@"' sh "$n" \
    slurmd -D -f "$CONF" -N "$n" </dev/null >>"$DIR/log/slurmd-$n.out" 2>&1 &
  echo $! > "$pf"
  log "slurmd $n started in netns $n at ${ADDR[$n]} (pid $(cat "$pf"))"
}

if ! alive "$DIR/pids/slurmctld.pid"; then
  setup_network
  render_conf
else
  setup_network                         # idempotent: repairs a missing piece, keeps the live config
fi
write_env_and_shim
start_munged
start_slurmctld
for n in "${NODES[@]}"; do start_slurmd "$n"; done

# ---------------------------------------------------------------- 5. health
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
  ok=0
  for n in "${NODES[@]}"; do
    state="$(sinfo -h -n "$n" -o '%T' 2>/dev/null | head -1 || true)"
    case "$state" in
      idle|mixed|allocated) ok=$((ok + 1));;
      drain*|down*) scontrol update nodename="$n" state=resume 2>/dev/null || true;;
    esac
  done
  [[ $ok -eq 2 ]] && break
  (( $(date +%s) < deadline )) || die "nodes not usable after ${TIMEOUT}s: $(sinfo -h -N -o '%N %T' | tr '\n' ' ')(see $DIR/log/slurmd-*.log; $(sinfo -h -R 2>/dev/null))"
  sleep 0.5
done
out="$(timeout 60 srun -p "$PARTITION" -N2 -n2 -t 1 hostname 2>&1 | sort | tr '\n' ' ')" \
  || die "srun -N2 health check failed: $out"
log "cluster '$CLUSTER' up: nodes $NODE1 (${ADDR[$NODE1]}) and $NODE2 (${ADDR[$NODE2]}); srun -N2 hostname -> $out"
log "use it with:  source $ENVFILE"
echo "export SLURM_CONF=$CONF"
