# shellcheck shell=bash
# Shared helpers for the test-infrastructure scripts and .ci/run. Sourced, never executed.
#
# Machine facts these helpers are written for: Debian bookworm, root, and no systemd, so nothing
# starts by itself: daemons are started by hand, recorded in pid files, and stopped only by the PID
# we recorded (never by name: other people's daemons on the same machine are not ours to kill).

# Everything the scripts create at run time (pid files, logs, env files, Ceph data) lives here.
POLLINATOR_CI_DIR=${POLLINATOR_CI_DIR:-/tmp/pollinator-ci}
export POLLINATOR_CI_DIR

log() { printf '[%s] %s\n' "${LOG_TAG:-infra}" "$*" >&2; }

die() {
  printf '[%s] ERROR: %s\n' "${LOG_TAG:-infra}" "$*" >&2
  exit 1
}

need_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (installs packages and starts system daemons)"
}

# The Debian mirror this machine is configured with. Read at run time so that no mirror host name
# is written into the project (machines differ in which mirror or snapshot they use).
debian_mirror() {
  local mirror=""
  if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $mirror && -r /etc/apt/sources.list ]]; then
    mirror=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
      /etc/apt/sources.list)
  fi
  [[ -n $mirror ]] || die "cannot find the Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  printf '%s\n' "$mirror"
}

# apt_install [--no-install-recommends] PACKAGE...: install only what is missing, and run
# `apt-get update` at most once per process tree (fresh machines have empty package lists).
apt_install() {
  local opts=() missing=() pkg
  if [[ ${1:-} == --no-install-recommends ]]; then opts+=("$1"); shift; fi
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} > 0)) || return 0
  need_root
  # Another apt run (a colleague's script) may hold the lock: wait for it instead of failing.
  local apt=(apt-get -o DPkg::Lock::Timeout=600 -q)
  if [[ -z ${POLLINATOR_APT_UPDATED:-} ]]; then
    log "apt-get update"
    "${apt[@]}" update >/dev/null || die "apt-get update failed"
    export POLLINATOR_APT_UPDATED=1
  fi
  log "apt-get install ${opts[*]} ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y "${opts[@]}" "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# pid_alive PIDFILE COMM: true when PIDFILE names a live process whose command name is COMM.
# Checking the name guards against a stale pid file whose PID now belongs to someone else.
pid_alive() {
  local file=$1 comm=$2 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/comm ]] || return 1
  [[ $(<"/proc/$pid/comm") == "$comm" ]]
}

# stop_pidfile PIDFILE COMM [SECONDS]: stop the process we started (SIGTERM, then SIGKILL after
# SECONDS; some daemons take long to exit), then remove the pid file. Does nothing if it is gone.
stop_pidfile() {
  local file=$1 comm=$2 grace=${3:-20} pid i
  if pid_alive "$file" "$comm"; then
    pid=$(<"$file")
    log "stopping $comm (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      [[ -d /proc/$pid ]] || break
      sleep 0.1
    done
    if [[ -d /proc/$pid ]]; then
      log "$comm (pid $pid) did not exit in ${grace}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds.
wait_until() {
  local limit=$1 what=$2 i
  shift 2
  for ((i = 0; i < limit * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "timed out after ${limit}s waiting for $what"
  return 1
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# take_lock NAME: serialise concurrent runs of the same script (two colleagues, or CI re-runs).
# The lock is fd 9, so daemons are started with `9>&-` to keep them from holding it forever.
take_lock() {
  mkdir -p "$POLLINATOR_CI_DIR"
  exec 9>"$POLLINATOR_CI_DIR/$1.lock"
  flock -w 900 9 || die "another $1 setup still holds $POLLINATOR_CI_DIR/$1.lock after 15 min"
}
