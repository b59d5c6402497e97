#!/usr/bin/env bash
# Build the official Colonies docker executor (github.com/colonyos/executors, module `docker`) and
# a container registry for it to pull from, for tests/test_official_executor.py. Idempotent.
#
#   tests/infra/official_executor.sh                 build from the Go module proxy
#   tests/infra/official_executor.sh --source DIR    build from DIR, a checkout of
#                                                    colonyos/executors at $COMMIT
#   tests/infra/official_executor.sh --status        exit 0 when both binaries are there
#
# The executor's go.mod replaces its sibling module `common` with `../common`, which Go ignores in
# a dependency, so a throwaway main module requires `docker` and points `common` at the same
# commit. On the day this was written the module proxy refused every version of
# github.com/colonyos/executors (403 for the version list, the pseudo-versions and @latest); then
# this script records why in $POLLINATOR_CI_DIR/official-executor.unavailable, exits 0, and the
# tests skip with that reason. Any other failure is an error.
#
# The executor always pulls its image (docker/common/pkg/docker PullImage), and the project's
# machines have no registry, so the tests push the base image into a local one first: the
# distribution registry, built from its Go module. Both binaries land in $POLLINATOR_PEERS_DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
LOG_TAG=official-executor
# shellcheck source=tests/infra/lib.sh
source tests/infra/lib.sh

PEERS_DIR=${POLLINATOR_PEERS_DIR:-/opt/pollinator-peers}
COMMIT=b6b237c3d2f6
PSEUDO=v0.0.0-20240820102330-$COMMIT  # colonyos/executors at b6b237c (2024-08-20)
REGISTRY_VERSION=v3.1.2
EXEC_DIR=$PEERS_DIR/official-executors-$COMMIT
REG_DIR=$PEERS_DIR/registry-$REGISTRY_VERSION
UNAVAILABLE=$POLLINATOR_CI_DIR/official-executor.unavailable

built() { [[ -x $EXEC_DIR/docker-executor && -x $REG_DIR/registry ]]; }

source_dir=""
case ${1:-} in
  --status) built && exit 0 || exit 1 ;;
  --source)
    source_dir=$(cd "${2:?--source needs a directory}" && pwd)
    [[ -f $source_dir/docker/go.mod && -f $source_dir/common/go.mod ]] ||
      die "$source_dir is not a checkout of colonyos/executors (no docker/go.mod, common/go.mod)"
    ;;
  "") ;;
  *) die "unknown option: $1" ;;
esac

mkdir -p "$POLLINATOR_CI_DIR"
if built; then
  log "reusing $EXEC_DIR/docker-executor and $REG_DIR/registry"
  rm -f "$UNAVAILABLE"
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod
build_log=$POLLINATOR_CI_DIR/official-executor-build.log
: >"$build_log"

if [[ ! -x $EXEC_DIR/docker-executor ]]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    go mod init pollinator-peers/official-executors >/dev/null 2>&1
    if [[ -n $source_dir ]]; then
      go mod edit -require "github.com/colonyos/executors/docker@$PSEUDO" \
        -replace "github.com/colonyos/executors/docker=$source_dir/docker" \
        -replace "github.com/colonyos/executors/common=$source_dir/common"
    else
      go mod edit -replace "github.com/colonyos/executors/common=github.com/colonyos/executors/common@$PSEUDO"
      go get "github.com/colonyos/executors/docker/cmd@$PSEUDO"
    fi
  ) >>"$build_log" 2>&1 || {
    if grep -q "403 Forbidden\|not available" "$build_log"; then
      reason="the Go module proxy refuses github.com/colonyos/executors/docker@$PSEUDO (403); build it from a checkout: tests/infra/official_executor.sh --source DIR"
      printf '%s\n' "$reason" >"$UNAVAILABLE"
      log "not built: $reason"
      exit 0
    fi
    tail -n 20 "$build_log" >&2
    die "resolving the official docker executor failed (log: $build_log)"
  }
  log "building the official docker executor at $COMMIT into $EXEC_DIR"
  mkdir -p "$EXEC_DIR"
  (cd "$work" && go build -o "$EXEC_DIR/docker-executor.tmp" \
    github.com/colonyos/executors/docker/cmd) >>"$build_log" 2>&1 || {
    tail -n 20 "$build_log" >&2
    die "building the official docker executor failed (log: $build_log)"
  }
  mv -f "$EXEC_DIR/docker-executor.tmp" "$EXEC_DIR/docker-executor"
fi

if [[ ! -x $REG_DIR/registry ]]; then
  log "building the distribution registry $REGISTRY_VERSION into $REG_DIR"
  GOBIN=$REG_DIR go install "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" \
    >>"$build_log" 2>&1 || {
    tail -n 20 "$build_log" >&2
    die "building the registry failed (log: $build_log)"
  }
fi
rm -f "$UNAVAILABLE"
log "built: $EXEC_DIR/docker-executor, $REG_DIR/registry"
