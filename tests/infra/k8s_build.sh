#!/usr/bin/env bash
# Build the Kubernetes test cluster's programs once per machine, from source, with ordinary `go`
# commands against the Go module proxy, into fixed paths outside the checkout (versions and paths:
# tests/infra/k8s/versions.sh). Idempotent: a part whose BUILD-INFO matches what this script would
# build is reused as it is, so only the first run on a machine pays for the build.
#
#   tests/infra/k8s_build.sh           build what is missing or stale; prints the bin dirs on stdout
#   tests/infra/k8s_build.sh --status  exit 0 when every part is built and current
#
# What is built: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl
# (k8s.io/kubernetes through tests/infra/k8s/go.mod), etcd (tests/infra/k8s/etcd/go.mod),
# containerd + containerd-shim-runc-v2 + ctr (tests/infra/k8s/containerd/go.mod), runc (with
# seccomp), crictl, and the static pause program
# from the Kubernetes release's own pause.c. No container registry is reachable here, so nothing
# is pulled: tests/infra/k8s_up.sh turns pause and the test image into local images.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=k8s-build
# shellcheck source=tests/infra/lib.sh
source "$here/lib.sh"
# shellcheck source=tests/infra/k8s/versions.sh
source "$here/k8s/versions.sh"

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
# -trimpath and -s -w: smaller binaries and no build paths in them. -mod=readonly: the go.mod and
# go.sum files in tests/infra/k8s are the whole truth (a missing checksum is an error, not a fetch
# that silently changes what is built). GOTOOLCHAIN=local: build with the Go that is installed.
export GOFLAGS="-trimpath -mod=readonly -buildvcs=false" GOTOOLCHAIN=local
LDFLAGS_STRIP="-s -w"

# One line per part that says exactly what was built; a different line means rebuild.
go_version() { "$GO" env GOVERSION; }
sum_of() { cat "$@" | sha256sum | cut -c1-16; }
info_k8s() { printf 'kubernetes %s go=%s mod=%s\n' "$K8S_VERSION" "$(go_version)" "$(sum_of "$here/k8s/go.mod" "$here/k8s/go.sum")"; }
info_etcd() { printf 'etcd %s go=%s mod=%s\n' "$ETCD_VERSION" "$(go_version)" "$(sum_of "$here/k8s/etcd/go.mod" "$here/k8s/etcd/go.sum")"; }
info_containerd() { printf 'containerd %s go=%s mod=%s\n' "$CONTAINERD_VERSION" "$(go_version)" "$(sum_of "$here/k8s/containerd/go.mod" "$here/k8s/containerd/go.sum")"; }
info_runc() { printf 'runc %s go=%s seccomp\n' "$RUNC_VERSION" "$(go_version)"; }
info_crictl() { printf 'crictl %s go=%s\n' "$CRICTL_VERSION" "$(go_version)"; }

current() { # current PREFIX INFO: the part at PREFIX was built as INFO says
  [[ -r $1/BUILD-INFO && $(<"$1/BUILD-INFO") == "$2" ]]
}

# build_part NAME PREFIX INFO FUNCTION: run FUNCTION DIR to build into a fresh DIR, then swap it
# in whole, so that an interrupted build never leaves a half-filled prefix that looks complete.
build_part() {
  local name=$1 prefix=$2 info=$3 fn=$4 start=$EPOCHREALTIME tmp
  if current "$prefix" "$info"; then
    log "$name: reusing $prefix"
    return 0
  fi
  log "$name: building into $prefix"
  tmp=$prefix.building
  rm -rf "$tmp"
  mkdir -p "$tmp/bin"
  "$fn" "$tmp"
  printf '%s\n' "$info" >"$tmp/BUILD-INFO"
  rm -rf "$prefix"
  mv "$tmp" "$prefix"
  log "$name: built in $(awk "BEGIN {printf \"%.0f\", $EPOCHREALTIME - $start}") s"
}

# pinned GOMOD MODULE: the version GOMOD requires MODULE at (inside or outside a require block).
pinned() {
  awk -v m="$2" '$1 == "require" && $2 == m {print $3} $1 == m && $2 ~ /^v/ {print $2}' "$1"
}

check_pins() {
  local mod file want
  for mod in "k8s.io/kubernetes k8s/go.mod $K8S_VERSION" \
    "go.etcd.io/etcd/server/v3 k8s/etcd/go.mod $ETCD_VERSION" \
    "github.com/containerd/containerd/v2 k8s/containerd/go.mod $CONTAINERD_VERSION"; do
    read -r mod file want <<<"$mod"
    [[ $(pinned "$here/$file" "$mod") == "$want" ]] ||
      die "tests/infra/$file does not require $mod $want as tests/infra/k8s/versions.sh says; make them agree"
  done
}

build_k8s() {
  local out=$1 minor ldflags=() key val kv
  minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  # The version stamps the release's own build (hack/lib/version.sh) sets: without them every
  # binary reports v0.0.0 and the node's kubeletVersion is meaningless.
  for kv in "gitVersion=$K8S_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean \
    "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
    key=${kv%%=*}
    val=${kv#*=}
    ldflags+=("-X=k8s.io/component-base/version.$key=$val" "-X=k8s.io/client-go/pkg/version.$key=$val")
  done
  # CGO off, as the release builds these server binaries (static, no libc dependency).
  (cd "$here/k8s" && CGO_ENABLED=0 GOBIN=$out/bin "$GO" install -ldflags="$LDFLAGS_STRIP ${ldflags[*]}" tool)
  # pause: the sandbox's init process, compiled as the release compiles it.
  local src
  src=$(cd "$here/k8s" && "$GO" list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION" -o "$out/bin/pause" "$src"
}

build_etcd() {
  local out=$1
  (cd "$here/k8s/etcd" && CGO_ENABLED=0 "$GO" build -o "$out/bin/etcd" \
    -ldflags="$LDFLAGS_STRIP" go.etcd.io/etcd/server/v3)
}

build_containerd() {
  local out=$1
  # No btrfs/devmapper/zfs snapshotters (overlayfs is used); with them left out nothing needs cgo.
  (cd "$here/k8s/containerd" && CGO_ENABLED=0 GOBIN=$out/bin "$GO" install \
    -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags="$LDFLAGS_STRIP -X=github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" tool)
}

build_runc() {
  local out=$1
  # runc needs cgo (its nsenter part is C); the seccomp tag links libseccomp, so that pods asking
  # for the RuntimeDefault seccomp profile get one.
  CGO_ENABLED=1 GOBIN=$out/bin "$GO" install -tags seccomp \
    -ldflags="$LDFLAGS_STRIP -X=main.version=${RUNC_VERSION#v}" \
    "github.com/opencontainers/runc@$RUNC_VERSION"
}

build_crictl() {
  local out=$1
  CGO_ENABLED=0 GOBIN=$out/bin "$GO" install \
    -ldflags="$LDFLAGS_STRIP -X=sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}

all_current() {
  current "$K8S_PREFIX" "$(info_k8s)" && current "$ETCD_PREFIX" "$(info_etcd)" &&
    current "$CONTAINERD_PREFIX" "$(info_containerd)" && current "$RUNC_PREFIX" "$(info_runc)" &&
    current "$CRICTL_PREFIX" "$(info_crictl)"
}

case ${1:-} in
  "") ;;
  --status)
    [[ -x $GO ]] || exit 1
    all_current
    exit
    ;;
  *) die "usage: $0 [--status]" ;;
esac

[[ -x $GO ]] || die "no Go toolchain: install Go 1.24 or newer (looked for 'go' on PATH and /usr/local/go/bin/go)"
check_pins
if ! all_current; then
  need_root
  take_lock k8s-build
  # gcc + libc6-dev: the static pause program and runc's cgo part; libseccomp-dev + pkg-config:
  # runc's seccomp support.
  apt_install gcc libc6-dev libseccomp-dev pkg-config
  mkdir -p "$PEERS_DIR"
  start=$EPOCHREALTIME
  build_part runc "$RUNC_PREFIX" "$(info_runc)" build_runc
  build_part containerd "$CONTAINERD_PREFIX" "$(info_containerd)" build_containerd
  build_part crictl "$CRICTL_PREFIX" "$(info_crictl)" build_crictl
  build_part etcd "$ETCD_PREFIX" "$(info_etcd)" build_etcd
  build_part kubernetes "$K8S_PREFIX" "$(info_k8s)" build_k8s
  log "all parts current ($(awk "BEGIN {printf \"%.0f\", $EPOCHREALTIME - $start}") s)"
fi
printf '%s\n' "$K8S_PREFIX/bin" "$ETCD_PREFIX/bin" "$CONTAINERD_PREFIX/bin" "$RUNC_PREFIX/bin" \
  "$CRICTL_PREFIX/bin"
