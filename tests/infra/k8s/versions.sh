# shellcheck shell=bash
# The pinned parts of the Kubernetes test cluster and where tests/infra/k8s_build.sh installs
# them. Sourced by k8s_build.sh and k8s_up.sh. Why these versions: see tests/infra/k8s/README.md.
#
# K8S_VERSION, ETCD_VERSION and CONTAINERD_VERSION are also pinned by the go.mod files beside this
# file (go.mod, etcd/go.mod, containerd/go.mod); k8s_build.sh refuses to build when they disagree.
K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.5
CONTAINERD_VERSION=v2.1.9
RUNC_VERSION=v1.3.7
# crictl: the CRI client k8s_up.sh tears pod sandboxes down with (and a debugging tool).
CRICTL_VERSION=v1.34.0
# The pause program comes from the Kubernetes release's build/pause/linux/pause.c.
PAUSE_VERSION=3.10.1

# Built once per machine, outside any checkout, and reused by every later run (CI included).
PEERS_DIR=${POLLINATOR_PEERS_DIR:-/opt/pollinator-peers}
K8S_PREFIX=$PEERS_DIR/k8s-$K8S_VERSION
ETCD_PREFIX=$PEERS_DIR/etcd-$ETCD_VERSION
CONTAINERD_PREFIX=$PEERS_DIR/containerd-$CONTAINERD_VERSION
RUNC_PREFIX=$PEERS_DIR/runc-$RUNC_VERSION
CRICTL_PREFIX=$PEERS_DIR/crictl-$CRICTL_VERSION
