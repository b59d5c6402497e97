#!/usr/bin/env bash
# Bring up the official Colonies server (ColonyOS), built from its Go module, as a test peer: each
# instance with its own PostgreSQL, a colony, a user to submit with, and an env file for the tests.
# Idempotent.
#
#   tests/infra/colonies_up.sh           install the Debian packages if missing, build the servers
#                                        if missing, reuse running instances or start fresh ones,
#                                        write $POLLINATOR_CI_DIR/<instance>.env; prints the env
#                                        files' paths on stdout, progress and PIDs on stderr
#   tests/infra/colonies_up.sh --status  exit 0 when every instance runs and answers
#   tests/infra/colonies_up.sh --stop    stop exactly the processes this script started (pid files)
#
# Instances (host port on 127.0.0.1; the env file is $POLLINATOR_CI_DIR/<name>.env):
#   colonies       v1.9.12  50180  exclusive assign, as the official deployment runs it
#                                  (docker-compose.env sets COLONIES_EXCLUSIVE_ASSIGN=true)
#   colonies-dist  v1.9.12  50181  distributed assign, the server's own default when unset
#   colonies-v187  v1.8.7   50187  the release the official executors link, the last before the
#                                  executor capabilities became lists (v1.9.6); no stale-executor
#                                  removal and no cancelprocessmsg
# The v1.9.12 instances remove an executor not heard from for STALE_SECONDS (10 s, checked every
# CLEANUP_SECONDS = 1 s: COLONIES_STALE_EXECUTOR_DURATION and COLONIES_CLEANUP_INTERVAL, both whole
# seconds, read in internal/cli/common.go and controllers/colonies_controller_worker.go), so a test
# of "a job outlives the stale-executor window" needs about 12 s instead of 10 min.
#
# Why network namespaces and a socat bridge: the server binds :50080 (all addresses) and its
# embedded etcd binds 0.0.0.0:2379-2381, and nothing on this machine may listen beyond loopback.
# So each instance (server and PostgreSQL) runs in a network namespace of its own that has only a
# loopback device (`unshare --net`, kept alive by a holder process, entered with nsenter). Inside,
# socat listens on a Unix socket and connects to 127.0.0.1:50080; on the host, socat listens on
# 127.0.0.1:<port> and connects to that socket. The API is then reachable from the host's loopback
# only, and the tests, Docker containers' executors and Ceph all stay in the normal namespace.
# Three namespaces also let three servers use the same fixed ports side by side.
#
# The servers are built once with ordinary `go` commands (module proxy) into $POLLINATOR_PEERS_DIR
# (default /opt/pollinator-peers/colonies-<version>/), outside the checkout, and reused while the
# binary's embedded module version matches. PostgreSQL is Debian's, run by hand as the postgres
# user (no systemd), with trust authentication: it is reachable only inside its namespace. Every
# start is a fresh database. Keys are generated per start with the server binary's key generator
# and written only to the env files (mode 600), never to this log.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=colonies
# shellcheck source=tests/infra/lib.sh
source "$here/lib.sh"

PEERS_DIR=${POLLINATOR_PEERS_DIR:-/opt/pollinator-peers}
RUN_DIR=$POLLINATOR_CI_DIR/colonies
COLONY_NAME=pollinator-test
USER_NAME=pollinator-user
STALE_SECONDS=10
CLEANUP_SECONDS=1
API_PORT=50080 # the server's port inside its namespace
PG_BIN=/usr/lib/postgresql/15/bin

# name version host-port exclusive-assign
INSTANCES=(
  "colonies v1.9.12 ${POLLINATOR_COLONIES_PORT:-50180} true"
  "colonies-dist v1.9.12 ${POLLINATOR_COLONIES_DIST_PORT:-50181} false"
  "colonies-v187 v1.8.7 ${POLLINATOR_COLONIES_V187_PORT:-50187} false"
)
# Processes of one instance, in start order: pid file name, command name (/proc/PID/comm).
PROCS=("netns sleep" "postgres postgres" "server colonies" "bridge-in socat" "bridge-out socat")

go_bin() {
  local go
  go=$(command -v go || true)
  [[ -n $go ]] || go=/usr/local/go/bin/go
  [[ -x $go ]] || die "no Go toolchain (go on PATH or /usr/local/go/bin/go) to build the server"
  printf '%s\n' "$go"
}

# The colonies module version a binary was built from ("" when it is not such a binary).
built_version() {
  [[ -x $1 ]] || return 0
  "$(go_bin)" version -m "$1" 2>/dev/null |
    awk '($1 == "mod" || $1 == "dep") && $2 == "github.com/colonyos/colonies" {print $3; exit}'
}

# build_server VERSION: PEERS_DIR/colonies-VERSION/colonies, built unless it is already there.
# `go install module/cmd@version` cannot be used: it asks the proxy for the module's version list,
# which the proxy refuses. A throwaway main module that requires the exact version builds the same
# package with the same dependency versions.
build_server() {
  local version=$1 dir=$PEERS_DIR/colonies-$1 go start secs
  if [[ $(built_version "$dir/colonies") == "$version" ]]; then
    log "reusing $dir/colonies ($(cat "$dir/BUILD" 2>/dev/null || echo "$version"))"
    return
  fi
  go=$(go_bin)
  log "building the Colonies server $version into $dir (takes minutes)"
  start=$EPOCHREALTIME
  rm -rf "$dir"
  mkdir -p "$dir/src"
  (
    cd "$dir/src"
    export GOTOOLCHAIN=local GOFLAGS=-mod=mod
    "$go" mod init pollinator-peers/colonies >/dev/null 2>&1
    "$go" get "github.com/colonyos/colonies/cmd@$version" >"$dir/build.log" 2>&1
    "$go" build -o "$dir/colonies.tmp" \
      -ldflags "-X main.BuildVersion=$version -X main.BuildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
      github.com/colonyos/colonies/cmd >>"$dir/build.log" 2>&1
  ) || {
    tail -n 20 "$dir/build.log" >&2 || true
    die "building the Colonies server $version failed (log: $dir/build.log)"
  }
  mv -f "$dir/colonies.tmp" "$dir/colonies"
  [[ $(built_version "$dir/colonies") == "$version" ]] || die "$dir/colonies is not $version"
  secs=$(awk "BEGIN {printf \"%.0f\", $EPOCHREALTIME - $start}")
  printf '%s built in %s s on %s with %s\n' "$version" "$secs" "$(date -u +%FT%TZ)" \
    "$("$go" env GOVERSION)" >"$dir/BUILD"
  log "built $version in $secs s"
}

# --- one instance --------------------------------------------------------------------------

inst_dir() { printf '%s/%s\n' "$RUN_DIR" "$1"; }
env_file() { printf '%s/%s.env\n' "$POLLINATOR_CI_DIR" "$1"; }

procs_running() {
  local dir d file comm
  dir=$(inst_dir "$1")
  for d in "${PROCS[@]}"; do
    read -r file comm <<<"$d"
    pid_alive "$dir/$file.pid" "$comm" || return 1
  done
}

# Running, answering /health through the bridge, and set up (the env file is written last).
healthy() {
  local name=$1 port=$2
  procs_running "$name" && [[ -s $(env_file "$name") ]] &&
    curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null
}

stop_instance() {
  local name=$1 dir i file comm
  dir=$(inst_dir "$name")
  rm -f "$(env_file "$name")"
  for ((i = ${#PROCS[@]} - 1; i >= 0; i--)); do
    read -r file comm <<<"${PROCS[i]}"
    stop_pidfile "$dir/$file.pid" "$comm" 20
  done
}

# in_netns NAME CMD...: run CMD in the instance's network namespace.
in_netns() {
  local dir
  dir=$(inst_dir "$1")
  shift
  nsenter --net="/proc/$(<"$dir/netns.pid")/ns/net" -- "$@"
}

# own_netns PIDFILE: the process has entered a network namespace other than ours (until unshare
# has run, /proc/PID/ns/net is still the host's).
own_netns() {
  pid_alive "$1" sleep &&
    [[ $(readlink "/proc/$(<"$1")/ns/net") != "$(readlink /proc/self/ns/net)" ]]
}

# spawn NAME PIDNAME CMD...: start CMD in the background, detached, and record its PID. Every
# wrapper (nsenter, setpriv, env) execs, so the PID is the daemon's own.
spawn() {
  local dir pidname=$2
  dir=$(inst_dir "$1")
  shift 2
  nohup "$@" >"$dir/log/$pidname.log" 2>&1 </dev/null 9>&- &
  echo $! >"$dir/$pidname.pid"
}

# A new key pair from the v1.9.12 binary's generator (v1.8.7 has none; keys are the same for
# both): "PRVKEY ID" on stdout. The generator logs both; its output stays in this variable.
generate_key() {
  local out prv id
  out=$("$PEERS_DIR/colonies-v1.9.12/colonies" security generate 2>&1)
  prv=$(grep -o 'PrvKey=[0-9a-f]\{64\}' <<<"$out" | cut -d= -f2)
  id=$(grep -o 'Id=[0-9a-f]\{64\}' <<<"$out" | cut -d= -f2)
  [[ -n $prv && -n $id ]] || die "the server binary's key generator printed no key"
  printf '%s %s\n' "$prv" "$id"
}

start_instance() {
  local name=$1 version=$2 port=$3 exclusive=$4
  local dir bin server_prv server_id colony_prv colony_id user_prv user_id
  dir=$(inst_dir "$name")
  bin=$PEERS_DIR/colonies-$version/colonies
  port_open "$port" && die "127.0.0.1:$port is in use by a process this script did not start" \
    "(see: ss -ltnp 'sport = :$port'); stop it, or choose another port (POLLINATOR_COLONIES_*PORT)"
  rm -rf "${dir:?}"
  mkdir -p "$dir/log" "$dir/run" "$dir/server"
  chown postgres:postgres "$dir/run"
  chown nobody:nogroup "$dir/server"

  # The namespace: a holder process keeps it alive while daemons come and go.
  spawn "$name" netns unshare --net -- sleep infinity
  wait_until 10 "the network namespace" own_netns "$dir/netns.pid" ||
    die "unshare --net did not create a network namespace"
  in_netns "$name" ip link set lo up

  # PostgreSQL 15 from Debian, as the postgres user, on the namespace's loopback only.
  mkdir -p "$dir/pg"
  chown postgres:postgres "$dir/pg"
  setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/initdb" -D "$dir/pg" \
    --auth=trust --username=postgres --encoding=UTF8 --locale=C.UTF-8 >"$dir/log/initdb.log" 2>&1 ||
    die "initdb failed (log: $dir/log/initdb.log)"
  spawn "$name" postgres nsenter --net="/proc/$(<"$dir/netns.pid")/ns/net" -- \
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/postgres" -D "$dir/pg" \
    -c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories="$dir/run"
  wait_until 30 "PostgreSQL" in_netns "$name" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p 5432 ||
    die "PostgreSQL did not start (log: $dir/log/postgres.log)"

  local keys
  keys=$(generate_key && generate_key && generate_key)
  read -r server_prv server_id colony_prv colony_id user_prv user_id <<<"${keys//$'\n'/ }"

  # The server, as nobody, with only the variables it reads (no private key: it needs the ID).
  # --initdb creates the tables in the fresh database and records the server ID.
  spawn "$name" server nsenter --net="/proc/$(<"$dir/netns.pid")/ns/net" -- \
    setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
    env -i -C "$dir/server" PATH=/usr/bin:/bin TZ=UTC LANG=C.UTF-8 \
    COLONIES_SERVER_PORT=$API_PORT COLONIES_SERVER_HTTP_PORT=$API_PORT COLONIES_TLS=false \
    COLONIES_SERVER_TLS=false COLONIES_SERVER_ID="$server_id" \
    COLONIES_DB_HOST=127.0.0.1 COLONIES_DB_PORT=5432 COLONIES_DB_USER=postgres \
    COLONIES_DB_PASSWORD=unused-trust-auth COLONIES_DB_TIMESCALEDB=false \
    COLONIES_EXCLUSIVE_ASSIGN="$exclusive" COLONIES_ALLOW_EXECUTOR_REREGISTER=false \
    COLONIES_STALE_EXECUTOR_DURATION=$STALE_SECONDS COLONIES_CLEANUP_INTERVAL=$CLEANUP_SECONDS \
    COLONIES_CRON_CHECKER_PERIOD=1000 COLONIES_GENERATOR_CHECKER_PERIOD=1000 \
    COLONIES_RETENTION=false COLONIES_VERBOSE=false \
    "$bin" server start --initdb --etcddatadir "$dir/server/etcd" --port "$API_PORT"

  # The bridge: namespace loopback -> Unix socket -> host loopback.
  spawn "$name" bridge-in nsenter --net="/proc/$(<"$dir/netns.pid")/ns/net" -- \
    socat "UNIX-LISTEN:$dir/run/api.sock,fork,mode=600,unlink-early,backlog=128" "TCP:127.0.0.1:$API_PORT"
  wait_until 10 "the bridge's socket" test -S "$dir/run/api.sock"
  spawn "$name" bridge-out socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork,backlog=128" \
    "UNIX-CONNECT:$dir/run/api.sock"
  wait_until 60 "the server on 127.0.0.1:$port" \
    curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$port/health" || {
    tail -n 20 "$dir/log/server.log" >&2 || true
    die "the server did not answer (log: $dir/log/server.log)"
  }

  # The colony (signed by the server key) and a user of it (signed by the colony key), through
  # the server's own CLI over the bridge. Keys reach it in its environment, never in argv.
  local cli_env=(env COLONIES_SERVER_HOST=127.0.0.1 COLONIES_SERVER_PORT="$port"
    COLONIES_SERVER_HTTP_PORT="$port" COLONIES_TLS=false COLONIES_SERVER_TLS=false TZ=UTC
    "COLONIES_COLONY_NAME=$COLONY_NAME")
  # (The CLI insists on COLONIES_PRVKEY as well: it gets the key that signs.)
  COLONIES_SERVER_PRVKEY=$server_prv COLONIES_PRVKEY=$server_prv "${cli_env[@]}" "$bin" colony add --name "$COLONY_NAME" \
    --colonyid "$colony_id" >"$dir/log/setup.log" 2>&1 || die "adding the colony failed (log: $dir/log/setup.log)"
  COLONIES_COLONY_PRVKEY=$colony_prv COLONIES_PRVKEY=$colony_prv "${cli_env[@]}" "$bin" user add --name "$USER_NAME" \
    --userid "$user_id" --email "" --phone "" >>"$dir/log/setup.log" 2>&1 ||
    die "adding the user failed (log: $dir/log/setup.log)"

  procs_running "$name" || die "a process of $name exited during start-up (logs: $dir/log)"
  # Written atomically, readable by root only: it holds the test keys.
  (
    umask 077
    cat >"$(env_file "$name").tmp" <<ENV
# Written by tests/infra/colonies_up.sh: the official Colonies server $version (loopback, test keys).
COLONIES_SERVER_HOST=127.0.0.1
COLONIES_SERVER_PORT=$port
COLONIES_SERVER_TLS=false
COLONIES_SERVER_VERSION=$version
COLONIES_SERVER_ID=$server_id
COLONIES_SERVER_PRVKEY=$server_prv
COLONIES_COLONY_NAME=$COLONY_NAME
COLONIES_COLONY_ID=$colony_id
COLONIES_COLONY_PRVKEY=$colony_prv
COLONIES_USER_NAME=$USER_NAME
COLONIES_USER_ID=$user_id
COLONIES_PRVKEY=$user_prv
COLONIES_EXCLUSIVE_ASSIGN=$exclusive
COLONIES_ALLOW_EXECUTOR_REREGISTER=false
COLONIES_STALE_EXECUTOR_DURATION=$([[ $version == v1.8.* ]] && echo 0 || echo "$STALE_SECONDS")
COLONIES_CLEANUP_INTERVAL=$CLEANUP_SECONDS
ENV
    mv -f "$(env_file "$name").tmp" "$(env_file "$name")"
  )
}

pids_line() {
  local dir d file comm out=""
  dir=$(inst_dir "$1")
  for d in "${PROCS[@]}"; do
    read -r file comm <<<"$d"
    out+="$file=$(cat "$dir/$file.pid" 2>/dev/null || echo '?') "
  done
  printf '%s\n' "${out% }"
}

case ${1:-} in
  "") ;;
  --status)
    for inst in "${INSTANCES[@]}"; do
      read -r name _ port _ <<<"$inst"
      healthy "$name" "$port" || exit 1
    done
    exit 0
    ;;
  --stop)
    for inst in "${INSTANCES[@]}"; do
      read -r name _ _ _ <<<"$inst"
      stop_instance "$name"
    done
    exit 0
    ;;
  *) die "usage: $0 [--status|--stop]" ;;
esac

need_root
take_lock colonies
apt_install postgresql socat iproute2 curl util-linux
[[ -x $PG_BIN/postgres ]] || die "PostgreSQL 15 is not at $PG_BIN (Debian bookworm's postgresql-15)"

for version in v1.9.12 v1.8.7; do build_server "$version"; done

starting=""
# If a start fails (die or a failing command under set -e): show why, stop what was started.
on_start_failure() {
  [[ -n $starting ]] || return 0
  log "start-up of $starting failed; stopping what was started (logs: $(inst_dir "$starting")/log)"
  stop_instance "$starting"
}
trap on_start_failure EXIT

for inst in "${INSTANCES[@]}"; do
  read -r name version port exclusive <<<"$inst"
  if healthy "$name" "$port"; then
    log "reusing $name ($version) on 127.0.0.1:$port"
  else
    stop_instance "$name" # whatever is left of an earlier, partly dead start
    starting=$name
    started_at=$EPOCHREALTIME
    start_instance "$name" "$version" "$port" "$exclusive"
    starting=""
    log "$name ($version) up on 127.0.0.1:$port in" \
      "$(awk "BEGIN {printf \"%.1f\", $EPOCHREALTIME - $started_at}") s; pids: $(pids_line "$name")"
  fi
  printf '%s\n' "$(env_file "$name")"
done
trap - EXIT
