#!/usr/bin/env bash
# Stop the cluster started by start-two-node-cluster.sh: cancel its jobs, stop both
# slurmd, slurmctld and munged by the PIDs recorded in $SLURM_2NODE_DIR/pids (never
# by name), then remove its network namespaces, veths, bridge and /etc/hosts lines.
# Leaves the one-node cluster of start-cluster.sh alone. Idempotent.
# SLURM_2NODE_PURGE=1 also deletes $SLURM_2NODE_DIR.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${SLURM_2NODE_DIR:-/tmp/slurm-2node}"
PURGE="${SLURM_2NODE_PURGE:-0}"
read -r NODE1 NODE2 <<<"${SLURM_2NODE_NODES:-slnode1 slnode2}"
BRIDGE="${SLURM_2NODE_BRIDGE:-s2nbr0}"
HOSTS_TAG="# slurm-two-node"
export SLURM_CONF="$DIR/etc/slurm.conf"

LOG_TAG=slurm-2node
# shellcheck source=common.sh
source "$HERE/common.sh"

# 1. Cancel this cluster's jobs while its daemons are up (slurmstepd then ends on its own).
cancel_all_jobs

# 2. Daemons, in reverse start order.
stop_pid "slurmd $NODE2" "$DIR/pids/slurmd-$NODE2.pid"
stop_pid "slurmd $NODE1" "$DIR/pids/slurmd-$NODE1.pid"
stop_pid slurmctld "$DIR/pids/slurmctld.pid"
stop_pid munged    "$DIR/pids/munged.pid"
rm -f "$DIR/munge/munge.socket.2" "$DIR/munge/munge.socket.2.lock"

# 3. Report (do not kill) processes still inside the node namespaces (leftover slurmstepd/tasks).
for ns in "$NODE1" "$NODE2"; do
  [[ -e "/var/run/netns/$ns" ]] || continue
  left="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
  [[ -n "${left// }" ]] && log "WARNING: processes still in netns $ns (not killed): $left"
done

# 4. Network: namespaces (their veth ends go with them), host veth ends, bridge, /etc/hosts lines.
for ns in "$NODE1" "$NODE2"; do
  [[ -e "/var/run/netns/$ns" ]] && ip netns del "$ns" && log "netns $ns removed"
done
for v in s2nv1 s2nv2; do ip link del "$v" 2>/dev/null || true; done
ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE" && log "bridge $BRIDGE removed"
if grep -q "$HOSTS_TAG\$" /etc/hosts; then
  tmp="$(mktemp)"; grep -v "$HOSTS_TAG\$" /etc/hosts > "$tmp"; cat "$tmp" > /etc/hosts; rm -f "$tmp"
  log "/etc/hosts lines removed"
fi

if [[ "$PURGE" == 1 ]]; then rm -rf "$DIR"; log "removed $DIR"; fi
exit 0
