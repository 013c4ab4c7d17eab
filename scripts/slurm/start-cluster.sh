#!/usr/bin/env bash
# Start a single-node Slurm cluster (slurmctld + slurmd + a private munged) on
# loopback, for tests/CI. Idempotent: if the daemons recorded under
# $SLURM_LOCAL_DIR are alive it only re-runs the health check.
#
# Needs root (slurmd must be root to launch jobs). Debian/Ubuntu (apt-get).
# Nothing system-wide is configured: everything lives under $SLURM_LOCAL_DIR
# and clients find it through SLURM_CONF (source "$SLURM_LOCAL_DIR/env.sh").
#
# Environment (all optional):
#   SLURM_LOCAL_DIR        base dir for conf/state/logs/pids   [/tmp/slurm-local]
#   SLURM_LOCAL_CLUSTER    ClusterName                         [localcluster]
#   SLURM_LOCAL_PARTITION  default partition name              [debug]
#   SLURM_LOCAL_NODENAME   NodeName (must be `hostname -s` for slurmctld) [$(hostname -s)]
#   SLURM_LOCAL_CTLD_PORT / SLURM_LOCAL_SLURMD_PORT            [6817 / 6818]
#   SLURM_LOCAL_REALMEM    RealMemory in MB   [from `slurmd -C`, minus SLURM_LOCAL_MEM_MARGIN]
#   SLURM_LOCAL_MEM_MARGIN MB subtracted from detected memory  [0]
#   SLURM_LOCAL_INSTALL    1 = apt-get install missing packages [1]
#   SLURM_LOCAL_ACCOUNTING slurmdbd | none                      [slurmdbd]
#                          slurmdbd = also install+run MariaDB and slurmdbd (real sacct);
#                          none = no accounting, a squeue-based sacct shim instead
#   SLURM_LOCAL_SACCT_SHIM 1 = put a squeue-based `sacct` in $DIR/bin (see scripts/slurm/README.md)
#                          [1 if ACCOUNTING=none, else 0]
#   SLURM_LOCAL_DBD_PORT / SLURM_LOCAL_MYSQL_PORT  (slurmdbd mode) [6819 / 3307]
#   SLURM_LOCAL_CRED_EXPIRE AuthInfo cred_expire = requeue delay in s [10]
#   SLURM_LOCAL_CLEAN      1 = start slurmctld with -c (forget old jobs) [0]
#   SLURM_LOCAL_TIMEOUT    seconds to wait for the node to become usable [60]
#   SLURM_LOCAL_TEMPLATE   slurm.conf template [slurm.conf.template next to this script]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${SLURM_LOCAL_DIR:-/tmp/slurm-local}"
CLUSTER="${SLURM_LOCAL_CLUSTER:-localcluster}"
PARTITION="${SLURM_LOCAL_PARTITION:-debug}"
NODENAME="${SLURM_LOCAL_NODENAME:-$(hostname -s)}"
CTLD_PORT="${SLURM_LOCAL_CTLD_PORT:-6817}"
SLURMD_PORT="${SLURM_LOCAL_SLURMD_PORT:-6818}"
ACCOUNTING="${SLURM_LOCAL_ACCOUNTING:-slurmdbd}"
if [[ "$ACCOUNTING" == slurmdbd ]]; then SACCT_SHIM="${SLURM_LOCAL_SACCT_SHIM:-0}"; else SACCT_SHIM="${SLURM_LOCAL_SACCT_SHIM:-1}"; fi
DBD_PORT="${SLURM_LOCAL_DBD_PORT:-6819}"
MYSQL_PORT="${SLURM_LOCAL_MYSQL_PORT:-3307}"
CLEAN="${SLURM_LOCAL_CLEAN:-0}"
TIMEOUT="${SLURM_LOCAL_TIMEOUT:-60}"
MEM_MARGIN="${SLURM_LOCAL_MEM_MARGIN:-0}"
CRED_EXPIRE="${SLURM_LOCAL_CRED_EXPIRE:-10}"
TEMPLATE="${SLURM_LOCAL_TEMPLATE:-$HERE/slurm.conf.template}"

LOG_TAG=slurm-local
# shellcheck source=common.sh
source "$HERE/common.sh"

[[ $(id -u) -eq 0 ]] || die "must run as root (slurmd launches jobs as root)"
[[ -f "$TEMPLATE" ]] || die "template not found: $TEMPLATE"

# ---------------------------------------------------------------- 1. install
PKGS=(slurmctld slurmd slurm-client munge)
BINARIES="$SLURM_BINARIES"
if [[ "$ACCOUNTING" == slurmdbd ]]; then
  PKGS+=(slurmdbd mariadb-server)
  BINARIES+=" slurmdbd sacctmgr mariadbd mariadb-install-db mariadb"
fi
install_packages SLURM_LOCAL_INSTALL "$BINARIES" "${PKGS[@]}"

mkdir -p "$DIR"/{etc,state,spool,log,run,pids,bin,munge}
chmod 0755 "$DIR" "$DIR"/{etc,state,spool,log,run,pids,bin}
chmod 0755 "$DIR/munge"          # must not be group/world-writable (munged), but world-executable so non-root clients reach the socket
CONF="$DIR/etc/slurm.conf"
ENVFILE="$DIR/env.sh"

# ---------------------------------------------------------------- 2. config
render_conf() {
  local hw cpus boards sockets cores threads realmem defmem
  hw="$(slurmd -C | head -1)"
  get() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  cpus=$(get CPUs); boards=$(get Boards); sockets=$(get SocketsPerBoard)
  cores=$(get CoresPerSocket); threads=$(get ThreadsPerCore); realmem=$(get RealMemory)
  realmem="${SLURM_LOCAL_REALMEM:-$(( realmem - MEM_MARGIN ))}"
  defmem=$(( realmem / cpus / 2 ))          # default --mem-per-cpu: half a CPU's share
  sed -e "s#@@DIR@@#$DIR#g" -e "s#@@CLUSTER@@#$CLUSTER#g" -e "s#@@PARTITION@@#$PARTITION#g" \
      -e "s#@@NODENAME@@#$NODENAME#g" -e "s#@@CTLD_PORT@@#$CTLD_PORT#g" \
      -e "s#@@SLURMD_PORT@@#$SLURMD_PORT#g" -e "s#@@CPUS@@#$cpus#g" -e "s#@@BOARDS@@#$boards#g" \
      -e "s#@@SOCKETS@@#$sockets#g" -e "s#@@CORES@@#$cores#g" -e "s#@@THREADS@@#$threads#g" \
      -e "s#@@REALMEM@@#$realmem#g" -e "s#@@DEFMEMPERCPU@@#$defmem#g" -e "s#@@CRED_EXPIRE@@#$CRED_EXPIRE#g" "$TEMPLATE" > "$CONF.new"
  grep -v '^#' "$CONF.new" | grep -q '@@' && die "unrendered placeholder in $CONF.new"
  if [[ "$ACCOUNTING" == slurmdbd ]]; then
    # AccountingStoragePass = munge socket for slurmdbd connections (else /run/munge is used)
    sed -i -e "s#^AccountingStorageType=.*#AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=$NODENAME\nAccountingStoragePort=$DBD_PORT\nAccountingStoragePass=$DIR/munge/munge.socket.2#" \
           -e "s#^JobAcctGatherType=.*#JobAcctGatherType=jobacct_gather/linux#" "$CONF.new"
    printf '%s\n' "AuthType=auth/munge" "AuthInfo=socket=$DIR/munge/munge.socket.2" \
      "DbdHost=$NODENAME" "DbdAddr=127.0.0.1" "DbdPort=$DBD_PORT" "SlurmUser=root" "DebugLevel=info" \
      "LogFile=$DIR/log/slurmdbd.log" "PidFile=$DIR/run/slurmdbd.pid" \
      "StorageType=accounting_storage/mysql" "StorageHost=127.0.0.1" "StoragePort=$MYSQL_PORT" \
      "StorageUser=slurm" "StoragePass=slurm" "StorageLoc=slurm_acct_db" > "$DIR/etc/slurmdbd.conf"
    chmod 0600 "$DIR/etc/slurmdbd.conf"    # slurmdbd refuses a conf readable by others
  fi
  mv "$CONF.new" "$CONF"
  : > "$DIR/etc/plugstack.conf"           # empty: don't pick up /etc/slurm/plugstack.conf.d
  chmod 0644 "$CONF" "$DIR/etc/plugstack.conf"
}

cat > "$ENVFILE" <<EOF
# source this file to talk to the local test cluster
export SLURM_CONF="$CONF"
$( [[ "$SACCT_SHIM" == 1 ]] && echo "export PATH=\"$DIR/bin:\$PATH\"" )
EOF
export SLURM_CONF="$CONF"
[[ "$SACCT_SHIM" == 1 ]] && export PATH="$DIR/bin:$PATH"

[[ "$SACCT_SHIM" == 1 ]] && write_sacct_shim

# ---------------------------------------------------------------- 3. daemons
start_mariadb() {
  if alive "$DIR/pids/mariadbd.pid"; then log "mariadbd already running (pid $(cat "$DIR/pids/mariadbd.pid"))"; return; fi
  mkdir -p "$DIR/mysql"
  if [[ ! -d "$DIR/mysql/data/mysql" ]]; then
    mariadb-install-db --no-defaults --datadir="$DIR/mysql/data" --user=root \
      --auth-root-authentication-method=socket --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
  fi
  nohup mariadbd --no-defaults --datadir="$DIR/mysql/data" --socket="$DIR/mysql/mysqld.sock" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --skip-name-resolve --user=root \
    --pid-file="$DIR/run/mariadbd.pid" --log-error="$DIR/log/mariadbd.log" \
    --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 </dev/null >>"$DIR/log/mariadbd.out" 2>&1 &
  echo $! > "$DIR/pids/mariadbd.pid"
  for _ in $(seq 150); do mariadb --no-defaults -S "$DIR/mysql/mysqld.sock" -u root -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
  mariadb --no-defaults -S "$DIR/mysql/mysqld.sock" -u root -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;" \
    || die "mariadb not usable; see $DIR/log/mariadbd.log"
  log "mariadbd started (pid $(cat "$DIR/pids/mariadbd.pid"))"
}

start_slurmdbd() {
  if alive "$DIR/pids/slurmdbd.pid"; then log "slurmdbd already running (pid $(cat "$DIR/pids/slurmdbd.pid"))"; return; fi
  # slurmdbd reads slurmdbd.conf from the directory of $SLURM_CONF
  nohup slurmdbd -D </dev/null >>"$DIR/log/slurmdbd.out" 2>&1 &
  echo $! > "$DIR/pids/slurmdbd.pid"
  for _ in $(seq 150); do sacctmgr -n list cluster format=cluster >/dev/null 2>&1 && break; sleep 0.2; done
  sacctmgr -n list cluster format=cluster >/dev/null || die "slurmdbd not answering; see $DIR/log/slurmdbd.log"
  sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
  log "slurmdbd started (pid $(cat "$DIR/pids/slurmdbd.pid"))"
}

start_slurmd() {
  if alive "$DIR/pids/slurmd.pid"; then log "slurmd already running (pid $(cat "$DIR/pids/slurmd.pid"))"; return; fi
  nohup slurmd -D -f "$CONF" -N "$NODENAME" </dev/null >>"$DIR/log/slurmd.out" 2>&1 &
  echo $! > "$DIR/pids/slurmd.pid"
  log "slurmd started (pid $(cat "$DIR/pids/slurmd.pid"))"
}

# Re-render the config only when nothing is running (a live cluster keeps its conf).
if ! alive "$DIR/pids/slurmctld.pid" && ! alive "$DIR/pids/slurmd.pid"; then render_conf; fi
start_munged
if [[ "$ACCOUNTING" == slurmdbd ]]; then start_mariadb; start_slurmdbd; fi
if [[ "$CLEAN" == 1 ]]; then start_slurmctld -c; else start_slurmctld; fi
start_slurmd

# ---------------------------------------------------------------- 4. health
deadline=$(( $(date +%s) + TIMEOUT ))
state=""
while :; do
  state="$(sinfo -h -n "$NODENAME" -o '%T' 2>/dev/null | head -1 || true)"
  [[ "$state" == idle || "$state" == mixed || "$state" == allocated ]] && break
  if [[ "$state" == drain* || "$state" == down* ]]; then
    scontrol update nodename="$NODENAME" state=resume 2>/dev/null || true
  fi
  (( $(date +%s) < deadline )) || die "node state '$state' after ${TIMEOUT}s; see $DIR/log/slurmd.log ($(sinfo -h -R 2>/dev/null))"
  sleep 0.5
done
out="$(timeout 60 srun -p "$PARTITION" -N1 -n1 -t 1 hostname 2>&1)" || die "srun health check failed: $out"
log "cluster '$CLUSTER' up: node $NODENAME is $state; srun -> $out"
log "use it with:  source $ENVFILE"
echo "export SLURM_CONF=$CONF"
