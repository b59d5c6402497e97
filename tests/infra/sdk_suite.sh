#!/usr/bin/env bash
# Run the official Python SDK's own test suite (pycolonies, unchanged) against a Colonies server:
# the simulator, or the official server. It is a yardstick for the simulator's fidelity: what
# passes against the official server must pass against the simulator. CI cannot fetch the SDK's
# repository, so CI does not run this; run it by hand with a checkout of the SDK's tests.
#
#   tests/infra/sdk_suite.sh SDK_DIR [--server simulator|colonies] [--colonies-bin FILE]
#                            [--python FILE] [-- PYTEST_ARGS...]
#   tests/infra/sdk_suite.sh --status   exit 0 when nothing of an earlier run is still running
#   tests/infra/sdk_suite.sh --stop     stop what an interrupted run left behind (pid files)
#
# SDK_DIR is a directory holding the SDK's test/ directory (and its pytest.ini), from the release
# that the project's test dependencies install (pycolonies 1.0.25). From a clone of the SDK:
#   git -C pycolonies archive v1.0.25 test pytest.ini | tar -x -C /tmp/sdk-tests
#   tests/infra/sdk_suite.sh /tmp/sdk-tests                       # against the simulator
#   tests/infra/sdk_suite.sh /tmp/sdk-tests --server colonies     # against the official server
#
# --server simulator (the default) runs `python -m pollinator_simulator` from this checkout;
# --server colonies runs the official server binary (default: the v1.9.12 build that
# tests/infra/colonies_up.sh leaves in $POLLINATOR_PEERS_DIR, /opt/pollinator-peers) on a fresh
# PostgreSQL of its own, with the cron and generator checkers at 1 s as in the SDK's own CI.
# --python is the interpreter with pycolonies and pytest (default: this checkout's .venv).
#
# Where it runs: the suite hard-codes port 50080 and the official server binds every address,
# so the server, its database and the tests all run in a private network namespace that has only
# a loopback device (`unshare --net`); nothing listens on the host. When tests/infra/s3_up.sh
# has written $POLLINATOR_CI_DIR/s3.env, the S3 server is bridged into the namespace through a
# Unix socket (socat) at the same address, so the SDK's upload tests can run; without it they
# fail. The two tests that need the SDK's native CFS library (libcfslib.so, not on PyPI) are
# deselected unless CFSLIB names one. Keys are generated for each run and passed to the tests in
# their environment only. Output: pytest's report, a one-line summary, and JUnit XML in
# $POLLINATOR_CI_DIR/sdk-suite/junit-<server>.xml. The exit status is pytest's.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
LOG_TAG=sdk-suite
# shellcheck source=tests/infra/lib.sh
source "$here/lib.sh"

RUN_DIR=$POLLINATOR_CI_DIR/sdk-suite
PORT=50080 # hard-coded in the SDK's colonies_test.py
PG_BIN=/usr/lib/postgresql/15/bin
PEERS_DIR=${POLLINATOR_PEERS_DIR:-/opt/pollinator-peers}
CFS_TESTS=(test/colonies_test.py::TestColonies::test_sync test/colonies_test.py::TestColonies::test_get_files)
# Processes a run starts, in start order: pid file name and command name (/proc/PID/comm). The
# server's command name is recorded at start in server.comm (it depends on --server).
PROCS=("netns sleep" "s3-out socat" "s3-in socat" "postgres postgres")

usage() {
  die "usage: $0 SDK_DIR [--server simulator|colonies] [--colonies-bin FILE] [--python FILE]" \
    "[-- PYTEST_ARGS...] | --status | --stop"
}

stop_all() {
  local i file comm
  [[ -s $RUN_DIR/server.comm ]] && stop_pidfile "$RUN_DIR/server.pid" "$(<"$RUN_DIR/server.comm")" 20
  for ((i = ${#PROCS[@]} - 1; i >= 0; i--)); do
    read -r file comm <<<"${PROCS[i]}"
    stop_pidfile "$RUN_DIR/$file.pid" "$comm" 20
  done
}

any_running() {
  local d file comm
  [[ -s $RUN_DIR/server.comm ]] && pid_alive "$RUN_DIR/server.pid" "$(<"$RUN_DIR/server.comm")" && return 0
  for d in "${PROCS[@]}"; do
    read -r file comm <<<"$d"
    pid_alive "$RUN_DIR/$file.pid" "$comm" && return 0
  done
  return 1
}

case ${1:-} in
  --status)
    if any_running; then
      log "processes of an earlier run are still running (stop them with $0 --stop)"
      exit 1
    fi
    exit 0
    ;;
  --stop)
    stop_all
    exit 0
    ;;
  "" | -*) usage ;;
esac

sdk_dir=$(cd "$1" 2>/dev/null && pwd) || die "SDK_DIR $1 is not a directory"
shift
[[ -d $sdk_dir/test ]] || die "$sdk_dir has no test/ directory: pass the directory that holds" \
  "the SDK's test/ (for example: git -C pycolonies archive v1.0.25 test pytest.ini | tar -x -C DIR)"
server=simulator
colonies_bin=$PEERS_DIR/colonies-v1.9.12/colonies
python=$repo/.venv/bin/python
pytest_args=()
while (($#)); do
  case $1 in
    --server) server=${2:-}; shift 2 || usage ;;
    --colonies-bin) colonies_bin=${2:-}; shift 2 || usage ;;
    --python) python=${2:-}; shift 2 || usage ;;
    --) shift; pytest_args=("$@"); break ;;
    *) usage ;;
  esac
done
[[ $server == simulator || $server == colonies ]] || die "--server must be simulator or colonies"
[[ -x $python ]] || die "no Python at $python: create the venv (python3 -m venv .venv &&" \
  ".venv/bin/pip install -c constraints.txt -e '.[test]') or pass --python"
"$python" -c 'import pycolonies, pytest' 2>/dev/null ||
  die "$python cannot import pycolonies and pytest (install the project's test extra)"
if [[ $server == colonies ]]; then
  [[ -x $colonies_bin ]] || die "no official server binary at $colonies_bin: build it with" \
    "tests/infra/colonies_up.sh, or pass --colonies-bin"
fi

need_root
take_lock sdk-suite
apt_install socat iproute2 curl util-linux
[[ $server == simulator ]] || apt_install postgresql
any_running && stop_all # left over from an interrupted run
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR/log"
trap stop_all EXIT

in_netns() { nsenter --net="/proc/$(<"$RUN_DIR/netns.pid")/ns/net" -- "$@"; }

# spawn PIDNAME CMD...: start CMD detached and record its PID (every wrapper here execs).
spawn() {
  local name=$1
  shift
  nohup "$@" >"$RUN_DIR/log/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN_DIR/$name.pid"
}

# The holder's namespace is the host's until unshare has run: wait for it to be a new one.
# shellcheck disable=SC2317  # called through wait_until
own_netns() {
  local ns
  ns=$(readlink "/proc/$(<"$RUN_DIR/netns.pid")/ns/net") && [[ $ns != $(readlink /proc/self/ns/net) ]]
}
spawn netns unshare --net -- sleep infinity
wait_until 10 "the network namespace" own_netns || die "the network namespace did not come up"
in_netns ip link set lo up

# Fresh keys for this run, read from the project's own key code (never printed or put in argv).
read -r server_prv server_id colony_prv colony_id executor_prv executor_id < <("$python" -c '
from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key
keys = [generate_private_key() for _ in range(3)]
print(" ".join(f"{k} {id_from_private_key(k)}" for k in keys))')

# The S3 server, bridged into the namespace at the same host:port.
s3_note="no S3 server ($POLLINATOR_CI_DIR/s3.env missing: run tests/infra/s3_up.sh): the SDK's upload tests will fail"
if [[ -s $POLLINATOR_CI_DIR/s3.env ]]; then
  set -a
  # shellcheck disable=SC1091
  source "$POLLINATOR_CI_DIR/s3.env"
  set +a
  s3_host=${AWS_S3_ENDPOINT%:*} s3_port=${AWS_S3_ENDPOINT##*:}
  [[ $s3_host == 127.0.0.1 && $s3_port =~ ^[0-9]+$ ]] ||
    die "AWS_S3_ENDPOINT in $POLLINATOR_CI_DIR/s3.env is not 127.0.0.1:PORT"
  spawn s3-out socat "UNIX-LISTEN:$RUN_DIR/s3.sock,fork,mode=600,unlink-early" "TCP:127.0.0.1:$s3_port"
  wait_until 10 "the S3 bridge's socket" test -S "$RUN_DIR/s3.sock" || die "the S3 bridge did not start"
  spawn s3-in nsenter --net="/proc/$(<"$RUN_DIR/netns.pid")/ns/net" -- \
    socat "TCP-LISTEN:$s3_port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$RUN_DIR/s3.sock"
  s3_note="S3 at $AWS_S3_ENDPOINT (bridged from the host)"
fi

case $server in
  simulator)
    basename "$python" | cut -c1-15 >"$RUN_DIR/server.comm"
    # A clean environment: with COLONIES_* keys in it the simulator would bootstrap a colony,
    # and the SDK's setup script is to create it, as against the official server.
    spawn server nsenter --net="/proc/$(<"$RUN_DIR/netns.pid")/ns/net" -- \
      env -i PATH=/usr/bin:/bin LANG=C.UTF-8 COLONIES_SERVER_ID="$server_id" \
      "$python" -m pollinator_simulator --host 127.0.0.1 --port "$PORT"
    ;;
  colonies)
    mkdir -p "$RUN_DIR/pg" "$RUN_DIR/run" "$RUN_DIR/server"
    chown postgres:postgres "$RUN_DIR/pg" "$RUN_DIR/run"
    chown nobody:nogroup "$RUN_DIR/server"
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/initdb" -D "$RUN_DIR/pg" \
      --auth=trust --username=postgres --encoding=UTF8 --locale=C.UTF-8 >"$RUN_DIR/log/initdb.log" 2>&1 ||
      die "initdb failed (log: $RUN_DIR/log/initdb.log)"
    spawn postgres nsenter --net="/proc/$(<"$RUN_DIR/netns.pid")/ns/net" -- \
      setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/postgres" -D "$RUN_DIR/pg" \
      -c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories="$RUN_DIR/run"
    wait_until 30 "PostgreSQL" in_netns "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p 5432 ||
      die "PostgreSQL did not start (log: $RUN_DIR/log/postgres.log)"
    echo colonies >"$RUN_DIR/server.comm"
    # Only public settings: the server needs the server owner's ID, never a private key.
    spawn server nsenter --net="/proc/$(<"$RUN_DIR/netns.pid")/ns/net" -- \
      setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
      env -i -C "$RUN_DIR/server" PATH=/usr/bin:/bin TZ=UTC LANG=C.UTF-8 \
      COLONIES_SERVER_PORT=$PORT COLONIES_SERVER_HTTP_PORT=$PORT COLONIES_TLS=false \
      COLONIES_SERVER_TLS=false COLONIES_SERVER_ID="$server_id" \
      COLONIES_DB_HOST=127.0.0.1 COLONIES_DB_PORT=5432 COLONIES_DB_USER=postgres \
      COLONIES_DB_PASSWORD=unused-trust-auth COLONIES_DB_TIMESCALEDB=false \
      COLONIES_EXCLUSIVE_ASSIGN=true COLONIES_CRON_CHECKER_PERIOD=1000 \
      COLONIES_GENERATOR_CHECKER_PERIOD=1000 COLONIES_RETENTION=false COLONIES_VERBOSE=false \
      "$colonies_bin" server start --initdb --etcddatadir "$RUN_DIR/server/etcd" --port "$PORT"
    ;;
esac
wait_until 60 "the $server server on port $PORT" \
  in_netns curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$PORT/health" || {
  tail -n 20 "$RUN_DIR/log/server.log" >&2 || true
  die "the $server server did not answer (log: $RUN_DIR/log/server.log)"
}
log "$server server up in the namespace; $s3_note"

deselect=()
if [[ -z ${CFSLIB:-} && ! -e /usr/local/lib/libcfslib.so ]]; then
  for t in "${CFS_TESTS[@]}"; do deselect+=(--deselect "$t"); done
  log "deselected ${#CFS_TESTS[@]} tests that need the SDK's native CFS library (set CFSLIB to run them)"
fi
timeout_opt=()
"$python" -c 'import pytest_timeout' 2>/dev/null && timeout_opt=(--timeout=300)

# The variables the SDK's tests and its setup script read (names as in its CI workflow).
export COLONIES_SERVER_HOST=127.0.0.1 TEST_COLONY_HOST=127.0.0.1 COLONIES_SERVER_PORT=$PORT
export COLONIES_TLS=false COLONIES_SERVER_PRVKEY=$server_prv TEST_COLONY_PRVKEY=$server_prv
export COLONIES_COLONY_NAME=test COLONIES_COLONY_ID=$colony_id COLONIES_COLONY_PRVKEY=$colony_prv
export COLONIES_PRVKEY=$executor_prv COLONIES_EXECUTOR_ID=$executor_id
export COLONIES_EXECUTOR_NAME=test-executor COLONIES_EXECUTOR_TYPE=cli
export PYTHONDONTWRITEBYTECODE=1 # nothing written into the SDK checkout
cd "$sdk_dir"
in_netns "$python" test/setup_test_env.py >"$RUN_DIR/log/setup.log" 2>&1 ||
  die "the SDK's setup_test_env.py failed (log: $RUN_DIR/log/setup.log)"
status=0
in_netns "$python" -m pytest -p no:cacheprovider -rfEs "${timeout_opt[@]}" "${deselect[@]}" \
  --junitxml="$RUN_DIR/junit-$server.xml" "${pytest_args[@]}" || status=$?
"$python" - "$RUN_DIR/junit-$server.xml" "$server" <<'PY' || true
import sys
import xml.etree.ElementTree as ET

suite = ET.parse(sys.argv[1]).getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
tests, failed = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
skipped = int(suite.get("skipped", 0))
print(f"sdk suite against the {sys.argv[2]}: {tests - failed - skipped} passed, {failed} failed, "
      f"{skipped} skipped (of {tests} run)")
PY
exit "$status"
