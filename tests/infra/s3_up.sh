#!/usr/bin/env bash
# Bring up a real S3 server for the tests: single-node Ceph (one mon, one memstore OSD) with the
# RADOS Gateway on 127.0.0.1, an S3 user with fixed test keys, and a test bucket. Idempotent.
#
#   tests/infra/s3_up.sh           install the Ceph packages if missing, reuse our running gateway
#                                  or start a fresh cluster, write $POLLINATOR_CI_DIR/s3.env;
#                                  prints the env file's path on stdout, PIDs on stderr
#   tests/infra/s3_up.sh --status  exit 0 when our gateway runs and accepts the test keys
#   tests/infra/s3_up.sh --stop    stop exactly the daemons this script started (pid files)
#
# Why Ceph and not a mock: RGW checks SigV4 signatures for real (a wrong secret is rejected) and
# behaves like production object stores; moto accepts any credentials. memstore keeps the data in
# RAM: nothing survives a restart, so a restart is a fresh cluster.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=s3
# shellcheck source=tests/infra/lib.sh
source "$here/lib.sh"

C=$POLLINATOR_CI_DIR/ceph
ENV_FILE=$POLLINATOR_CI_DIR/s3.env
PORT=${POLLINATOR_S3_PORT:-7480}
MON_V2_PORT=${POLLINATOR_CEPH_MON_PORT:-3300}
MON_V1_PORT=${POLLINATOR_CEPH_MON_V1_PORT:-6789}
# Fixed, test-only credentials: the server lives on loopback and holds only test data.
ACCESS_KEY=POLLINATORTESTACCESS
SECRET_KEY=pollinator-test-secret-not-for-production
REGION=us-east-1
BUCKET=pollinator-test
URL=http://127.0.0.1:$PORT

# Daemons in start order: pid file name, command name (as in /proc/PID/comm).
DAEMONS=("mon.a ceph-mon" "osd.0 ceph-osd" "client.rgw.a radosgw")

ceph_cli() { timeout 60 ceph -c "$C/ceph.conf" --connect-timeout 30 "$@"; }

# s3_request CURL-ARGS...: a SigV4-signed request with the test keys (curl >= 7.75 signs; RGW
# rejects the signature unless the payload-hash header is present and signed, hence -H).
s3_request() {
  curl -fsS --max-time 30 --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

ours_running() {
  local d name comm
  for d in "${DAEMONS[@]}"; do
    read -r name comm <<<"$d"
    pid_alive "$C/run/$name.pid" "$comm" || return 1
  done
}

# Our daemons run and the gateway accepts the test keys (ListBuckets is signed, so a gateway that
# answers but does not know the user fails here).
healthy() { ours_running && s3_request -o /dev/null "$URL/" 2>/dev/null; }

stop_ours() {
  local i name comm
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    read -r name comm <<<"${DAEMONS[i]}"
    stop_pidfile "$C/run/$name.pid" "$comm" 20
  done
  rm -f "$ENV_FILE"
}

pids_line() {
  local d name comm out=""
  for d in "${DAEMONS[@]}"; do
    read -r name comm <<<"$d"
    out+="$comm=$(cat "$C/run/$name.pid" 2>/dev/null || echo '?') "
  done
  printf '%s\n' "${out% }"
}

case ${1:-} in
  "") ;;
  --status)
    healthy
    exit
    ;;
  --stop)
    stop_ours
    exit 0
    ;;
  *) die "usage: $0 [--status|--stop]" ;;
esac

need_root
take_lock s3
apt_install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common
apt_install curl

start_cluster() {
  local port fsid
  for port in "$PORT" "$MON_V2_PORT" "$MON_V1_PORT"; do
    port_open "$port" && die "127.0.0.1:$port is in use by a process this script did not start" \
      "(see: ss -ltnp 'sport = :$port'); stop it, or choose other ports with POLLINATOR_S3_PORT," \
      "POLLINATOR_CEPH_MON_PORT, POLLINATOR_CEPH_MON_V1_PORT"
  done
  rm -rf "${C:?}"
  mkdir -p "$C/mon.a" "$C/osd.0" "$C/run" "$C/log" "$C/rgw"
  fsid=$(cat /proc/sys/kernel/random/uuid)
  # auth=none keeps a throwaway loopback cluster simple; `ms ... mode = crc secure` is required
  # with auth=none or the clients refuse to talk to the mon. Size-1 pools: there is one OSD.
  # A short paxos interval: RGW creates its pools one map change at a time, each waiting for the
  # default 1 s proposal interval; with 0.1 s start-up plus first bucket takes 3 s instead of 18 s.
  cat >"$C/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$MON_V2_PORT,v1:127.0.0.1:$MON_V1_PORT
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
ms mon client mode = crc secure
ms client mode = crc secure
ms bind ipv6 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.1
paxos min wait = 0.01
osd objectstore = memstore
memstore device bytes = 1073741824
run dir = $C/run
log file = $C/log/\$name.log
admin socket = $C/run/\$name.asok
pid file = $C/run/\$name.pid
[mon.a]
mon data = $C/mon.a
[osd.0]
osd data = $C/osd.0
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $C/rgw
CONF
  log "starting Ceph mon + memstore OSD + RADOS Gateway in $C"
  monmaptool --create --clobber --fsid "$fsid" \
    --addv a "[v2:127.0.0.1:$MON_V2_PORT,v1:127.0.0.1:$MON_V1_PORT]" "$C/monmap" >/dev/null
  ceph-mon -c "$C/ceph.conf" -i a --mkfs --monmap "$C/monmap" 9>&-
  # The daemons fork into the background and write their own pid files under $C/run.
  ceph-mon -c "$C/ceph.conf" -i a 9>&-
  ceph_cli osd create >/dev/null
  ceph-osd -c "$C/ceph.conf" -i 0 --mkfs >"$C/log/osd-mkfs.out" 2>&1 9>&-
  ceph_cli osd crush add-bucket localhost host >/dev/null 2>&1
  ceph_cli osd crush move localhost root=default >/dev/null 2>&1
  ceph_cli osd crush add osd.0 1.0 host=localhost >/dev/null 2>&1
  ceph-osd -c "$C/ceph.conf" -i 0 >"$C/log/osd-start.out" 2>&1 9>&-
  osd_up() { ceph_cli osd stat | grep -q '1 up'; }
  wait_until 60 "the OSD to come up" osd_up || die "the OSD did not come up"
  radosgw -c "$C/ceph.conf" -n client.rgw.a 9>&-
  wait_until 60 "the gateway on $URL" curl -s -o /dev/null "$URL/" || die "radosgw did not answer on $URL"
  timeout 60 radosgw-admin -c "$C/ceph.conf" user create --uid=pollinator-test \
    --display-name="Pollinator tests" --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
  ours_running || die "a Ceph daemon exited during start-up"
}

# If start-up fails (die or any failing command under set -e): show why, and leave nothing
# half-started behind. An EXIT trap, because `start_cluster || ...` would switch off set -e inside.
on_start_failure() {
  local f
  for f in "$C"/log/*; do
    [[ -s $f ]] || continue
    printf '%s\n' "--- last lines of $f" >&2
    tail -n 15 "$f" >&2
  done
  log "start-up failed; stopping what was started"
  stop_ours
}

if healthy; then
  log "reusing the running gateway on $URL"
else
  stop_ours # whatever is left of an earlier, partly dead start
  started_at=$EPOCHREALTIME
  trap 'on_start_failure' EXIT
  start_cluster
  trap - EXIT
  log "cluster up in $(awk "BEGIN {printf \"%.1f\", $EPOCHREALTIME - $started_at}") s"
fi

# The first bucket creates RGW's data pools (slow on a default cluster); pay that here, not in a test.
if ! s3_request -o /dev/null -I "$URL/$BUCKET" 2>/dev/null; then
  s3_request -o /dev/null -X PUT "$URL/$BUCKET" || die "cannot create bucket $BUCKET on $URL"
fi

# Written atomically: the tests read it (tests/infra/components.py) and shells can source it.
# AWS_S3_* names and meanings are those of the official Colonies tools (endpoint is host:port).
umask 077
cat >"$ENV_FILE.tmp" <<ENV
# Written by tests/infra/s3_up.sh: Ceph RADOS Gateway for the tests (loopback, test-only keys).
AWS_S3_ENDPOINT=127.0.0.1:$PORT
AWS_S3_ACCESSKEY=$ACCESS_KEY
AWS_S3_SECRETKEY=$SECRET_KEY
AWS_S3_REGION=$REGION
AWS_S3_BUCKET=$BUCKET
AWS_S3_TLS=false
AWS_S3_SKIPVERIFY=false
ENV
mv -f "$ENV_FILE.tmp" "$ENV_FILE"
log "S3 ready on $URL, bucket $BUCKET; pids: $(pids_line); env file: $ENV_FILE"
printf '%s\n' "$ENV_FILE"
