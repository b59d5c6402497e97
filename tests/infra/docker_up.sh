#!/usr/bin/env bash
# Bring up a Docker engine and the local base image the tests run containers from. Idempotent.
#
#   tests/infra/docker_up.sh           install docker.io + mmdebstrap if missing, start dockerd if
#                                      no engine answers, build the base image if missing, check
#                                      that a container runs; prints the image name on stdout
#   tests/infra/docker_up.sh --status  exit 0 when the engine answers and the image exists
#   tests/infra/docker_up.sh --stop    stop the dockerd this script started (by its recorded PID)
#
# There is no container registry on the project's machines, so the base image is built from the
# machine's Debian mirror (mmdebstrap) and loaded with `docker import`; no `docker pull` anywhere.
# An engine that is already running (started by anyone) is reused and never stopped by us.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=docker
# shellcheck source=tests/infra/lib.sh
source "$here/lib.sh"

# tests/conftest.py (docker_engine fixture) reads the same variable with the same default.
IMAGE=${POLLINATOR_TEST_IMAGE:-localhost/pollinator-python:bookworm}
PIDFILE=$POLLINATOR_CI_DIR/dockerd.pid
LOGFILE=$POLLINATOR_CI_DIR/dockerd.log

engine_up() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

case ${1:-} in
  "") ;;
  --status)
    engine_up && docker image inspect "$IMAGE" >/dev/null 2>&1
    exit
    ;;
  --stop)
    # dockerd stops its containers first; give it time before SIGKILL.
    stop_pidfile "$PIDFILE" dockerd 60
    exit 0
    ;;
  *) die "usage: $0 [--status|--stop]" ;;
esac

need_root
take_lock docker
apt_install docker.io mmdebstrap

if ! engine_up; then
  if [[ -n ${DOCKER_HOST:-} ]]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer; unset it to use a local dockerd"
  fi
  if ! pid_alive "$PIDFILE" dockerd; then
    log "starting dockerd (log: $LOGFILE)"
    # No systemd: start it by hand, detached from our stdout, without our lock fd.
    nohup /usr/sbin/dockerd --host unix:///var/run/docker.sock >"$LOGFILE" 2>&1 </dev/null 9>&- &
    echo $! >"$PIDFILE"
  fi
  if ! wait_until 60 "dockerd to answer" docker info; then
    tail -n 30 "$LOGFILE" >&2 || true
    die "dockerd did not become ready; full log: $LOGFILE"
  fi
  log "dockerd ready (pid $(<"$PIDFILE"))"
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  mirror=$(debian_mirror)
  # Build into a file first: a broken stream piped into `docker import` could leave a half image.
  tarball=$POLLINATOR_CI_DIR/base-image.tar
  log "building $IMAGE: mmdebstrap bookworm from $mirror (about 15 s)"
  mmdebstrap --quiet --variant=essential --include=python3,ca-certificates \
    bookworm "$tarball" "$mirror" 9>&- || die "mmdebstrap failed to build the base image"
  docker import "$tarball" "$IMAGE" >/dev/null || die "docker import of $tarball failed"
  rm -f "$tarball"
fi

# A real container run: proves the engine can start containers, not only answer the API.
if ! out=$(docker run --rm --network none "$IMAGE" python3 -c 'print("ok")' 2>&1) || [[ $out != ok ]]; then
  die "a container from $IMAGE does not run python3: $out"
fi
log "engine ok, image $IMAGE runs python3"
printf '%s\n' "$IMAGE"
