#!/usr/bin/env bash
# Bring up a real single-node Kubernetes for the tests: etcd, kube-apiserver (client certificates,
# RBAC + Node authorization), kube-controller-manager, kube-scheduler and a kubelet on containerd +
# runc with a bridge pod network, all serving on 127.0.0.1 only. Idempotent.
#
#   tests/infra/k8s_up.sh                      build the programs if needed (k8s_build.sh), reuse our
#                                              healthy cluster or start a fresh one, import the images,
#                                              run a smoke pod, write $POLLINATOR_CI_DIR/k8s.env;
#                                              prints the env file's path on stdout
#   tests/infra/k8s_up.sh --status             exit 0 when our cluster runs and the node is Ready
#   tests/infra/k8s_up.sh --stop               remove every pod, then stop exactly the daemons this
#                                              script started (pid files)
#   tests/infra/k8s_up.sh --restart-apiserver  kill kube-apiserver (SIGTERM, SIGKILL after 1 s) and
#                                              start it again: every watch and log stream is cut
#
# Needs the Docker engine and test image of tests/infra/docker_up.sh: no registry is reachable, so
# the pause image and the test image are saved from Docker and imported into containerd.
# How the tests use the cluster (admin and ServiceAccount kubeconfigs, the hostPath volume, the
# claim, the image): tests/infra/k8s/README.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=k8s
# shellcheck source=tests/infra/lib.sh
source "$here/lib.sh"
# shellcheck source=tests/infra/k8s/versions.sh
source "$here/k8s/versions.sh"

K=$POLLINATOR_CI_DIR/k8s
PKI=$K/pki
RUN=$K/run
LOGS=$K/log
ENV_FILE=$POLLINATOR_CI_DIR/k8s.env
# The kubelet refuses a loopback node IP, and the apiserver must reach the kubelet on 127.0.0.1:
# so the node is named localhost and the apiserver dials its Hostname address.
NODE=localhost
NAMESPACE=default
API_PORT=${POLLINATOR_K8S_API_PORT:-6443}
ETCD_PORT=${POLLINATOR_K8S_ETCD_PORT:-12379}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
KUBELET_PORT=10250
KUBELET_HEALTHZ_PORT=10248
KCM_PORT=10257
SCHEDULER_PORT=10259
# Virtual addresses only: no kube-proxy runs, so Service IPs route nowhere; the pod subnet lives on
# a bridge of this machine with no gateway, so pods reach each other and nothing else.
SERVICE_RANGE=10.96.0.0/24
POD_SUBNET=${POLLINATOR_K8S_POD_SUBNET:-10.244.0.0/24}
BRIDGE=pollinator0
IMAGE=${POLLINATOR_TEST_IMAGE:-localhost/pollinator-python:bookworm}
PAUSE_IMAGE=localhost/pollinator-pause:$PAUSE_VERSION
# hostPath base for job pods, also bound to the PersistentVolume/Claim $CLAIM.
VOLUMES=$K/volumes
CLAIM=pollinator-cfs
CNI_BIN_DIR=/usr/lib/cni

KUBECTL=$K8S_PREFIX/bin/kubectl
CTR_SOCK=$K/containerd/containerd.sock
ADMIN_KUBECONFIG=$K/admin.kubeconfig

# Daemons in start order: pid file name, command name (as in /proc/PID/comm, 15 characters at most).
DAEMONS=(
  "etcd etcd"
  "containerd containerd"
  "kube-apiserver kube-apiserver"
  "kube-controller-manager kube-controller"
  "kube-scheduler kube-scheduler"
  "kubelet kubelet"
)

kubectl_admin() { "$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" --request-timeout=20s "$@"; }
ctr_k8s() { "$CONTAINERD_PREFIX/bin/ctr" --address "$CTR_SOCK" --namespace k8s.io "$@"; }
crictl_ours() { "$CRICTL_PREFIX/bin/crictl" --runtime-endpoint "unix://$CTR_SOCK" --timeout 30s "$@"; }

elapsed_since() { awk "BEGIN {printf \"%.1f\", $EPOCHREALTIME - $1}"; }

ours_running() {
  local d name comm
  for d in "${DAEMONS[@]}"; do
    read -r name comm <<<"$d"
    pid_alive "$RUN/$name.pid" "$comm" || return 1
  done
}

apiserver_ready() {
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1
}

node_ready() {
  [[ $(kubectl_admin get node "$NODE" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

healthy() { ours_running && apiserver_ready && node_ready; }

# --- stopping -----------------------------------------------------------------------------------

stop_ours() {
  local i name comm
  # The kubelet first, so that it does not start pods again; then every pod sandbox through the
  # CRI (stops its containers, tears its network down, removes it), so that no container of ours
  # outlives the cluster; then the rest in reverse start order.
  stop_pidfile "$RUN/kubelet.pid" kubelet 20
  if pid_alive "$RUN/containerd.pid" containerd; then
    crictl_ours rmp --all --force >/dev/null 2>&1 || log "could not remove every pod sandbox (see crictl pods)"
  fi
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    read -r name comm <<<"${DAEMONS[i]}"
    # kube-apiserver can take more than 5 s to exit on SIGTERM.
    stop_pidfile "$RUN/$name.pid" "$comm" 20
  done
  unmount_kubelet_dir
  # The pod bridge, once no pod is attached (an empty bridge only stays behind).
  if [[ -d /sys/class/net/$BRIDGE && -z $(ls "/sys/class/net/$BRIDGE/brif" 2>/dev/null) ]]; then
    ip link delete "$BRIDGE" || true
  fi
  rm -f "$ENV_FILE"
}

# Unmount what the kubelet left mounted: its directory (it bind-mounts it onto itself to share
# mounts with containers) and the volumes of pods under it (projected volumes are tmpfs mounts),
# deepest first, so that removing the directory cannot reach into another file system.
unmount_kubelet_dir() {
  local target
  findmnt -rn -o TARGET | awk -v d="$K/kubelet" '$0 == d || index($0, d "/") == 1' | sort -r |
    while read -r target; do umount -l "$target" || true; done
}

# --- configuration ------------------------------------------------------------------------------

# issue NAME SUBJECT EXTENDED-KEY-USAGE [SUBJECT-ALT-NAMES]: a P-256 key and a certificate for it
# signed by the cluster's CA (Kubernetes reads the user from CN and the groups from O).
issue() {
  local name=$1 subject=$2 usage=$3 san=${4:-}
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$PKI/$name.key" \
    -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints = critical, CA:FALSE"
    echo "keyUsage = critical, digitalSignature"
    echo "extendedKeyUsage = $usage"
    [[ -z $san ]] || echo "subjectAltName = $san"
  } >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

make_pki() {
  mkdir -p "$PKI"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 30 -sha256 \
    -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -subj "/CN=pollinator-test-ca" \
    -addext "basicConstraints = critical, CA:TRUE" -addext "keyUsage = critical, keyCertSign, cRLSign" \
    2>/dev/null
  issue apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1, DNS:localhost, IP:${SERVICE_RANGE%.0/*}.1, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc"
  issue admin "/O=system:masters/CN=pollinator-admin" clientAuth
  issue controller-manager "/CN=system:kube-controller-manager" clientAuth
  issue scheduler "/CN=system:kube-scheduler" clientAuth
  issue kubelet "/O=system:nodes/CN=system:node:$NODE" clientAuth
  # The apiserver's identity towards the kubelet (logs, exec); the kubelet asks the apiserver
  # whether it may (webhook authorization), and system:masters may.
  issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  # ServiceAccount token signing key.
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/sa.key" 2>/dev/null
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  chmod 600 "$PKI"/*.key
}

# kubeconfig FILE USER CERT: a kubeconfig for a client certificate, written by kubectl itself.
kubeconfig() {
  local file=$1 user=$2 cert=$3 k=("$KUBECTL" config --kubeconfig="$1")
  "${k[@]}" set-cluster pollinator --server="https://127.0.0.1:$API_PORT" \
    --certificate-authority="$PKI/ca.crt" >/dev/null
  "${k[@]}" set-credentials "$user" --client-certificate="$PKI/$cert.crt" \
    --client-key="$PKI/$cert.key" >/dev/null
  "${k[@]}" set-context pollinator --cluster=pollinator --user="$user" --namespace="$NAMESPACE" >/dev/null
  "${k[@]}" use-context pollinator >/dev/null
  chmod 600 "$file"
}

write_configs() {
  kubeconfig "$ADMIN_KUBECONFIG" pollinator-admin admin
  kubeconfig "$K/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
  kubeconfig "$K/scheduler.kubeconfig" system:kube-scheduler scheduler
  kubeconfig "$K/kubelet.kubeconfig" "system:node:$NODE" kubelet

  mkdir -p "$K/containerd" "$K/cni/net.d"
  cat >"$K/containerd/config.toml" <<TOML
version = 3
root = "$K/containerd/root"
state = "$K/containerd/state"
# 0, like this script: root here cannot lower an oom_score_adj (no CAP_SYS_RESOURCE).
oom_score = 0

[grpc]
  address = "$CTR_SOCK"

[plugins.'io.containerd.internal.v1.opt']
  path = "$K/containerd/opt"

[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$K/containerd/registry"

[plugins.'io.containerd.cri.v1.runtime']
  # The kubelet asks for oom_score_adj -998 for pod sandboxes and -997 for Guaranteed pods; root
  # here lacks CAP_SYS_RESOURCE, so runc would fail to start them. containerd's own option raises
  # any lower value to containerd's own oom_score_adj (0), without patching anything.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$RUNC_PREFIX/bin/runc"
        Root = "$K/containerd/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$CNI_BIN_DIR"]
    conf_dir = "$K/cni/net.d"
    max_conf_num = 1
TOML

  # Every registry, whatever the image name, resolves to a closed loopback port: a pull fails at
  # once with "connection refused" and never leaves the machine (no registry is reachable anyway).
  mkdir -p "$K/containerd/registry/_default"
  cat >"$K/containerd/registry/_default/hosts.toml" <<TOML
server = "http://127.0.0.1:1"
TOML

  # A bridge with no gateway and no masquerading: pods on this node reach each other by IP; no
  # packet from a pod is routed off the machine. The firewall plugin accepts each pod's traffic in
  # the FORWARD chain: Docker sets its policy to DROP, and bridged packets pass through it here
  # (bridge-nf-call-iptables).
  cat >"$K/cni/net.d/10-pollinator.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "pollinator",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_SUBNET"}]],
        "dataDir": "$K/cni/ipam"
      }
    },
    {"type": "firewall"}
  ]
}
JSON

  cat >"$K/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
containerRuntimeEndpoint: unix://$CTR_SOCK
podLogsDir: $K/pod-logs
cgroupDriver: cgroupfs
# Pod FQDNs in /etc/hosts read <hostname>.<subdomain>.<namespace>.svc.cluster.local; no cluster
# DNS serves them (clusterDNS is unset, so pods get the machine's resolv.conf and no route to it).
clusterDomain: cluster.local
# This machine runs cgroup v1 (hybrid); Kubernetes 1.35 and later refuse it by default.
failCgroupV1: false
failSwapOn: false
# Root here cannot lower its oom_score_adj (the default asks for -999).
oomScoreAdj: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
# The test images are imported, not pulled: never garbage-collect them, and do not evict pods
# because other work on the machine fills its disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
YAML
}

# --- starting -----------------------------------------------------------------------------------

# start NAME COMMAND...: start a daemon detached from us (no systemd here), without our lock fd.
start() {
  local name=$1
  shift
  nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN/$name.pid"
}

# wait_for SECONDS NAME DESCRIPTION COMMAND...: like wait_until, but fails early when the daemon
# NAME has exited, and shows its log.
wait_for() {
  local limit=$1 name=$2 what=$3 comm i
  shift 3
  comm=$(printf '%s\n' "${DAEMONS[@]}" | awk -v n="$name" '$1 == n {print $2}')
  for ((i = 0; i < limit * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    pid_alive "$RUN/$name.pid" "$comm" || break
    sleep 0.25
  done
  tail -n 30 "$LOGS/$name.log" >&2 || true
  die "$what: not ready after ${limit}s or $name exited; full log: $LOGS/$name.log"
}

start_etcd() {
  # --unsafe-no-fsync: the cluster is thrown away at every fresh start, and fsyncs on a disk that
  # other work shares cost seconds under load.
  start etcd "$ETCD_PREFIX/bin/etcd" --name pollinator --data-dir "$K/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "pollinator=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --log-level warn
  wait_for 60 etcd "etcd on 127.0.0.1:$ETCD_PORT" curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"
}

start_containerd() {
  start containerd "$CONTAINERD_PREFIX/bin/containerd" --config "$K/containerd/config.toml"
  wait_for 60 containerd "containerd on $CTR_SOCK" "$CONTAINERD_PREFIX/bin/ctr" --address "$CTR_SOCK" version
}

start_apiserver() {
  start kube-apiserver "$K8S_PREFIX/bin/kube-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" --anonymous-auth=false \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_RANGE" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=Hostname \
    --endpoint-reconciler-type=none --profiling=false
  wait_for 120 kube-apiserver "kube-apiserver /readyz on 127.0.0.1:$API_PORT" apiserver_ready
}

start_controllers() {
  local kc=$K/controller-manager.kubeconfig ks=$K/scheduler.kubeconfig
  start kube-controller-manager "$K8S_PREFIX/bin/kube-controller-manager" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" --profiling=false
  start kube-scheduler "$K8S_PREFIX/bin/kube-scheduler" \
    --kubeconfig="$ks" --authentication-kubeconfig="$ks" --authorization-kubeconfig="$ks" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false --profiling=false
}

start_kubelet() {
  start kubelet "$K8S_PREFIX/bin/kubelet" --config="$K/kubelet.yaml" \
    --kubeconfig="$K/kubelet.kubeconfig" --root-dir="$K/kubelet" --cert-dir="$K/kubelet/pki" \
    --hostname-override="$NODE"
}

# The objects the tests rely on: the hostPath volume as a PersistentVolume bound to a claim in
# the test namespace (the claim mode of the Kubernetes plugin mounts it; pods may also mount the
# directory as a hostPath directly).
apply_objects() {
  mkdir -p "$VOLUMES"
  kubectl_admin apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $CLAIM
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteMany, ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: pollinator-hostpath
  claimRef: {namespace: $NAMESPACE, name: $CLAIM}
  hostPath: {path: $VOLUMES, type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: $CLAIM
  namespace: $NAMESPACE
spec:
  accessModes: [ReadWriteMany]
  storageClassName: pollinator-hostpath
  volumeName: $CLAIM
  resources:
    requests: {storage: 10Gi}
YAML
}

start_cluster() {
  local port f
  for port in "$API_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" "$KUBELET_PORT" "$KUBELET_HEALTHZ_PORT" \
    "$KCM_PORT" "$SCHEDULER_PORT"; do
    port_open "$port" && die "127.0.0.1:$port is in use by a process this script did not start" \
      "(see: ss -ltnp 'sport = :$port'); stop it, or move the apiserver and etcd with" \
      "POLLINATOR_K8S_API_PORT and POLLINATOR_K8S_ETCD_PORT"
  done
  # A fresh cluster every time; only containerd's image store is kept (imports are slow).
  unmount_kubelet_dir
  rm -rf --one-file-system "$K/etcd" "$K/kubelet" "$PKI" "$K/cni" "$K/pod-logs" "$VOLUMES" \
    "$K/containerd/state" "$K"/*.kubeconfig "$K/kubelet.yaml"
  mkdir -p "$RUN" "$LOGS" "$K/kubelet"
  for f in "$LOGS"/*.log; do [[ -e $f ]] && mv -f "$f" "$f.old"; done
  make_pki
  write_configs
  log "starting etcd, containerd, kube-apiserver (logs: $LOGS)"
  start_etcd
  start_containerd
  import_images
  start_apiserver
  start_controllers
  apply_objects
  log "control plane ready in $(elapsed_since "$started_at") s; starting the kubelet"
  start_kubelet
  wait_for 120 kubelet "node $NODE Ready" node_ready
  # The default ServiceAccount appears shortly after the namespace controller starts; a pod
  # created before it is rejected.
  wait_for 60 kube-controller-manager "ServiceAccount $NAMESPACE/default" \
    kubectl_admin get serviceaccount default --namespace "$NAMESPACE"
  ours_running || die "a daemon exited during start-up (logs: $LOGS)"
  log "node $NODE Ready in $(elapsed_since "$started_at") s"
}

on_start_failure() {
  log "start-up failed; stopping what was started (logs: $LOGS)"
  stop_ours
}

# --- images -------------------------------------------------------------------------------------

# import_image NAME: copy a Docker image into containerd's k8s.io namespace, unless the same image
# (by Docker image ID) was imported before and is still there.
import_image() {
  local name=$1 id stamp
  id=$(docker image inspect --format '{{.Id}}' "$name" 2>/dev/null) ||
    die "Docker has no image $name; run tests/infra/docker_up.sh first"
  stamp=$K/containerd/imported/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_')
  if [[ -r $stamp && $(<"$stamp") == "$id" ]] && ctr_k8s images ls -q "name==$name" | grep -q .; then
    return 0
  fi
  log "importing $name into containerd"
  mkdir -p "$K/containerd/imported"
  docker save "$name" | ctr_k8s images import --snapshotter overlayfs - >/dev/null ||
    die "importing $name into containerd failed"
  printf '%s\n' "$id" >"$stamp"
}

import_images() {
  if ! docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1; then
    log "making $PAUSE_IMAGE from the release's pause program"
    tar -C "$K8S_PREFIX/bin" -c pause |
      docker import --change 'ENTRYPOINT ["/pause"]' - "$PAUSE_IMAGE" >/dev/null
  fi
  import_image "$PAUSE_IMAGE"
  import_image "$IMAGE"
}

# A real pod from the test image: proves scheduling, the sandbox, the network, the runtime and
# the log path, not only that the daemons answer.
smoke_pod() {
  local pod=pollinator-smoke out
  kubectl_admin delete pod "$pod" --namespace "$NAMESPACE" --ignore-not-found --wait=true >/dev/null
  kubectl_admin apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $pod, namespace: $NAMESPACE}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  containers:
    - name: main
      image: $IMAGE
      imagePullPolicy: Never
      command: [python3, -c, "print('ok')"]
YAML
  if ! kubectl_admin wait pod "$pod" --namespace "$NAMESPACE" --timeout=90s \
    --for=jsonpath='{.status.phase}'=Succeeded >/dev/null 2>&1; then
    kubectl_admin describe pod "$pod" --namespace "$NAMESPACE" >&2 || true
    die "the smoke pod did not succeed (logs: $LOGS)"
  fi
  out=$(kubectl_admin logs "$pod" --namespace "$NAMESPACE")
  kubectl_admin delete pod "$pod" --namespace "$NAMESPACE" --wait=false >/dev/null
  [[ $out == ok ]] || die "the smoke pod printed '$out' instead of 'ok'"
}

write_env_file() {
  umask 077
  cat >"$ENV_FILE.tmp" <<ENV
# Written by tests/infra/k8s_up.sh: the single-node Kubernetes test cluster (loopback only).
POLLINATOR_K8S_KUBECONFIG=$ADMIN_KUBECONFIG
POLLINATOR_K8S_NAMESPACE=$NAMESPACE
POLLINATOR_K8S_IMAGE=$IMAGE
POLLINATOR_K8S_HOSTPATH=$VOLUMES
POLLINATOR_K8S_CLAIM=$CLAIM
POLLINATOR_K8S_NODE=$NODE
POLLINATOR_K8S_VERSION=$K8S_VERSION
POLLINATOR_K8S_KUBECTL=$KUBECTL
POLLINATOR_K8S_UP=$here/k8s_up.sh
ENV
  mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

# --- main ---------------------------------------------------------------------------------------

case ${1:-} in
  "") ;;
  --status)
    healthy
    exit
    ;;
  --stop)
    take_lock k8s
    stop_ours
    exit 0
    ;;
  --restart-apiserver)
    take_lock k8s
    pid_alive "$RUN/kube-apiserver.pid" kube-apiserver || die "our kube-apiserver is not running; start the cluster first"
    started_at=$EPOCHREALTIME
    # SIGKILL after 1 s: on SIGTERM the apiserver would wait up to a minute for open log and
    # watch streams to finish, and the point is to cut them.
    stop_pidfile "$RUN/kube-apiserver.pid" kube-apiserver 1
    start_apiserver
    log "kube-apiserver restarted in $(elapsed_since "$started_at") s"
    exit 0
    ;;
  *) die "usage: $0 [--status|--stop|--restart-apiserver]" ;;
esac

need_root
# Paths go into TOML, JSON and YAML files below: keep them to characters that need no quoting.
[[ $K =~ ^/[A-Za-z0-9/._-]+$ ]] || die "POLLINATOR_CI_DIR=$POLLINATOR_CI_DIR: use a path of letters, digits, '/', '.', '_' and '-'"
bash "$here/k8s_build.sh" >/dev/null
take_lock k8s
# containernetworking-plugins: the bridge, host-local, loopback and firewall CNI plugins (the
# last calls iptables). openssl: the PKI.
apt_install containernetworking-plugins iptables openssl curl
docker info >/dev/null 2>&1 || die "no Docker engine answers; run tests/infra/docker_up.sh first (the images come from it)"

if healthy; then
  log "reusing the running cluster (node $NODE Ready)"
  import_images
else
  stop_ours # whatever is left of an earlier, partly dead start
  started_at=$EPOCHREALTIME
  trap 'on_start_failure' EXIT
  start_cluster
  trap - EXIT
fi
smoke_start=$EPOCHREALTIME
smoke_pod
log "smoke pod ran in $(elapsed_since "$smoke_start") s"
write_env_file
log "Kubernetes $K8S_VERSION ready: kubeconfig $ADMIN_KUBECONFIG; pids in $RUN; env file: $ENV_FILE"
printf '%s\n' "$ENV_FILE"
