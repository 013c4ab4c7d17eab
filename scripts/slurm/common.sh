# Shared pieces of the local test clusters (start-cluster.sh, start-two-node-cluster.sh and
# their stop scripts). Sourced, not run. The caller sets DIR (the cluster's base directory)
# and LOG_TAG (the prefix of its log lines) before sourcing.

log() { echo "[$LOG_TAG] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

SLURM_BINARIES="slurmctld slurmd sbatch srun sinfo squeue scontrol scancel munged mungekey munge unmunge"

# install_packages SWITCH "BINARY..." PKG... : apt-get install the PKGs if any of the BINARIES
# is missing, only when the environment variable named SWITCH is 1 (its default).
install_packages() {
  local switch="$1" binaries="$2"; shift 2
  local allowed="${!switch:-1}"
  local need=0 b
  for b in $binaries; do command -v "$b" >/dev/null 2>&1 || need=1; done
  [[ $need -eq 1 ]] || return 0
  [[ "$allowed" == 1 ]] || die "slurm/munge binaries missing and $switch=0"
  log "installing $* (apt-get)"
  local t0; t0=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt/dpkg run (unattended upgrades, a parallel job) instead of failing on its lock.
  local apt=(apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends)
  "${apt[@]}" "$@" >/dev/null \
    || { apt-get -o DPkg::Lock::Timeout=600 update >/dev/null && "${apt[@]}" "$@" >/dev/null; } \
    || die "apt-get install $* failed"
  log "installed in $(( $(date +%s) - t0 ))s"
}

# write_sacct_shim: a squeue-based `sacct` in $DIR/bin for clusters without accounting.
# submitit polls `sacct -o JobID,State,NodeList --parsable2 -j ID...`; without slurmdbd the
# real sacct fails, so answer from slurmctld's memory (finished jobs stay there MinJobAge s).
write_sacct_shim() {
  cat > "$DIR/bin/sacct" <<'SHIM'
#!/usr/bin/env bash
# Minimal sacct stand-in for clusters without accounting (see scripts/slurm/README.md).
# Supports what submitit uses: -o/--format (JobID,State,NodeList,...), --parsable2/-P,
# -n/--noheader, -j/--jobs (repeatable, comma lists). Data comes from squeue -t all.
fields="JobID,State,NodeList"; ids=(); header=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    -o|--format) fields="$2"; shift 2;; --format=*) fields="${1#*=}"; shift;;
    -j|--jobs) ids+=("$2"); shift 2;; --jobs=*) ids+=("${1#*=}"); shift;;
    -n|--noheader) header=0; shift;;
    *) shift;;
  esac
done
declare -A map=([JobID]=%i [JobIDRaw]=%A [State]=%T [NodeList]=%N [JobName]=%j [Partition]=%P
                [ExitCode]=%x [Elapsed]=%M [Start]=%S [End]=%e [Submit]=%V [User]=%u)
fmt=""; IFS=, read -ra fl <<<"$fields"
for f in "${fl[@]}"; do fmt+="${map[$f]:-%i}|"; done
[[ $header == 1 ]] && (IFS='|'; echo "${fl[*]}")
jobs_arg=(); [[ ${#ids[@]} -gt 0 ]] && jobs_arg=(--jobs="$(IFS=,; echo "${ids[*]}")")
squeue -h -t all "${jobs_arg[@]}" -o "${fmt%|}" 2>/dev/null | sed 's/ *$//'
exit 0
SHIM
  chmod 0755 "$DIR/bin/sacct"
}

# start_munged: a private munged whose socket is a file under $DIR, so every daemon of the
# cluster (in any network namespace) reaches it.
start_munged() {
  if alive "$DIR/pids/munged.pid"; then log "munged already running (pid $(cat "$DIR/pids/munged.pid"))"; return; fi
  [[ -s "$DIR/munge/munge.key" ]] || mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null 2>&1 \
    || dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 2>/dev/null
  chmod 0600 "$DIR/munge/munge.key"
  rm -f "$DIR/munge/munge.socket.2" "$DIR/munge/munge.socket.2.lock"
  # -F: foreground, so $! is the daemon itself. --force: we run it as root.
  nohup munged -F --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket.2" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed" </dev/null >>"$DIR/log/munged.out" 2>&1 &
  echo $! > "$DIR/pids/munged.pid"
  for _ in $(seq 50); do [[ -S "$DIR/munge/munge.socket.2" ]] && break; sleep 0.1; done
  munge -n -S "$DIR/munge/munge.socket.2" | unmunge -S "$DIR/munge/munge.socket.2" >/dev/null \
    || die "munge self-test failed; see $DIR/log/munged.log"
  log "munged started (pid $(cat "$DIR/pids/munged.pid"))"
}

# start_slurmctld [EXTRA_ARG...]: slurmctld on $SLURM_CONF, waiting until `scontrol ping` says UP.
start_slurmctld() {
  if alive "$DIR/pids/slurmctld.pid"; then log "slurmctld already running (pid $(cat "$DIR/pids/slurmctld.pid"))"; return; fi
  nohup slurmctld -D -f "$SLURM_CONF" "$@" </dev/null >>"$DIR/log/slurmctld.out" 2>&1 &
  echo $! > "$DIR/pids/slurmctld.pid"
  for _ in $(seq 100); do [[ "$(scontrol ping 2>/dev/null)" == *"is UP"* ]] && break; sleep 0.2; done
  [[ "$(scontrol ping 2>&1)" == *"is UP"* ]] || die "slurmctld not answering; see $DIR/log/slurmctld.log"
  log "slurmctld started (pid $(cat "$DIR/pids/slurmctld.pid"))"
}

# stop_pid NAME PIDFILE: SIGTERM, then SIGKILL after 20 s; by recorded PID, never by name.
stop_pid() {
  local name="$1" pf="$2" pid
  if ! alive "$pf"; then rm -f "$pf"; log "$name not running"; return 0; fi
  pid="$(cat "$pf")"
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then log "$name (pid $pid) ignored SIGTERM for 20s, sending SIGKILL"; kill -KILL "$pid"; sleep 0.5; fi
  rm -f "$pf"
  log "$name (pid $pid) stopped"
}

# cancel_all_jobs: cancel this cluster's jobs while its daemons are up, so the slurmstepd
# processes (not our children) end cleanly; waits up to 30 s for them to leave the queue.
cancel_all_jobs() {
  alive "$DIR/pids/slurmctld.pid" && [[ -f "$SLURM_CONF" ]] || return 0
  local ids; ids="$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')"
  [[ -n "${ids// }" ]] || return 0
  log "cancelling jobs: $ids"
  # shellcheck disable=SC2086
  scancel $ids 2>/dev/null || true
  for _ in $(seq 60); do
    [[ -z "$(squeue -h -t PD,R,CG,CF,S,RQ,RS,RF,SE,SO,ST -o '%A' 2>/dev/null)" ]] && break
    sleep 0.5
  done
}
