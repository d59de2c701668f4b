#!/usr/bin/env bash
# A one-node Kubernetes v1.20.2 in a network namespace of its own, for the `k8s` tests.
#
#   cluster.sh up WORK NETNS      start everything; pids in WORK/run/pids; prints timings
#   cluster.sh down WORK NETNS    stop what `up` started (by pid), unmount, delete the namespace
#   cluster.sh kubectl WORK NETNS ARGS...   kubectl (v1.20.2) against it, from inside the namespace
#   cluster.sh dns WORK NETNS     every Service as NAME.NS.svc.cluster.local in the cluster DNS
#   cluster.sh load WORK NETNS IMAGE...     copy images from the machine's Docker into the cluster's
#
# Parts: etcd (Debian etcd-server), kube-apiserver/-controller-manager/-scheduler, kubelet and
# kube-proxy (build.sh, from Debian's kubernetes source), a private dockerd (dockershim; own
# socket, data-root and exec-root under WORK), the CNI bridge plugin, dnsmasq as cluster DNS.
# The namespace has no link out: node 10.200.0.1 on a veth pair whose both ends are inside it,
# pods 10.244.0.0/24 on bridge cni0, Services 10.96.0.0/24, a default route into nothing.
set -euo pipefail
cmd=${1:?up|down|kubectl|dns|load}
W=${2:?work folder}
NS=${3:?network namespace name}
shift 3
HERE=$(dirname "$(readlink -f "$0")")
B=${LOADSTACK_K8S_BIN:-${LOADSTACK_K8S_CACHE:-/var/cache/loadstack-k8s}/v1.20.2/bin}
R=$W/run
L=$W/logs
NODE_IP=10.200.0.1
NODE=loadstack-node
SOCK=unix://$R/docker.sock

inns() { ip netns exec "$NS" "$@"; }
kctl() { inns "$B/kubectl" --kubeconfig="$R/kubeconfig" "$@"; }

start() { # name cmd...: a daemon inside the namespace; nsenter execs, so $! is the daemon itself
  local name=$1
  shift
  nsenter --net="/run/netns/$NS" "$@" > "$L/$name.log" 2>&1 &
  echo "$name $!" >> "$R/pids"
}

wait_for() { # what limit_s cmd...: readiness, bounded; ends at once when a started daemon died
  local what=$1 limit=$2
  shift 2
  local t0=$SECONDS
  while ((SECONDS - t0 < limit)); do
    if "$@" > /dev/null 2>&1; then
      echo "up: $what after $((SECONDS - t0)) s"
      return 0
    fi
    while read -r name pid; do
      kill -0 "$pid" 2> /dev/null || {
        echo "$name died; its log:" >&2
        tail -20 "$L/$name.log" >&2
        return 1
      }
    done < "$R/pids"
    sleep 0.5
  done
  echo "TIMEOUT: $what did not come up within $limit s" >&2
  return 1
}

up() {
  for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl pause; do
    [ -x "$B/$b" ] || {
      echo "no $B/$b: run infra/dev/k8s/build.sh first" >&2
      exit 1
    }
  done
  mkdir -p "$R" "$L"
  : > "$R/pids"
  local t0=$SECONDS

  ip netns add "$NS"
  inns ip link set lo up
  inns ip link add lsk0 type veth peer name lsk1
  inns ip addr add "$NODE_IP/24" dev lsk0
  inns ip link set lsk0 up
  inns ip link set lsk1 up
  inns ip route add default dev lsk0 # a sink: nothing leaves this namespace
  inns sysctl -qw net.ipv4.ip_forward=1
  inns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2> /dev/null || modprobe br_netfilter 2> /dev/null || true

  start etcd /usr/bin/etcd --name node --data-dir "$R/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster node=http://127.0.0.1:2380
  mkdir -p "$R/docker" "$R/dx"
  command -v cgroupfs-mount > /dev/null && cgroupfs-mount > /dev/null 2>&1 || true
  start dockerd /usr/sbin/dockerd -H "$SOCK" --data-root "$R/docker" --exec-root "$R/dx" \
    --pidfile "$R/dockerd.pid" --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    --exec-opt native.cgroupdriver=cgroupfs
  wait_for etcd 120 inns curl -sf http://127.0.0.1:2379/health

  # One static token over TLS for every component and kubectl (1.20 has no insecure port).
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$R/token"
  echo "$(cat "$R/token"),admin,admin,system:masters" > "$R/tokens.csv"
  chmod 600 "$R/token" "$R/tokens.csv"
  openssl genrsa -out "$R/sa.key" 2048 2> /dev/null
  openssl rsa -in "$R/sa.key" -pubout -out "$R/sa.pub" 2> /dev/null
  cat > "$R/kubeconfig" << YAML
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
contexts: [{name: local, context: {cluster: local, user: admin, namespace: default}}]
users: [{name: admin, user: {tokenFile: "$R/token"}}]
current-context: local
YAML
  start kube-apiserver "$B/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --token-auth-file="$R/tokens.csv" --kubelet-preferred-address-types=InternalIP \
    --bind-address=0.0.0.0 --secure-port=6443 --advertise-address=$NODE_IP --cert-dir="$R/apiserver" \
    --service-cluster-ip-range=10.96.0.0/24 --authorization-mode=AlwaysAllow \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$R/sa.pub" --service-account-signing-key-file="$R/sa.key" \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultTolerationSeconds,ResourceQuota \
    --v=1
  wait_for dockerd 120 docker -H "$SOCK" info
  # The kubelet's sandbox image: upstream's pause.c (built by build.sh), alone in a root folder.
  local pause
  pause=$(mktemp -d)
  cp "$B/pause" "$pause/pause"
  tar -C "$pause" -c . | docker -H "$SOCK" import -c 'ENTRYPOINT ["/pause"]' - k8s-local/pause:3.2 > /dev/null
  rm -rf "$pause"
  wait_for kube-apiserver 300 kctl get --raw /healthz

  start kube-controller-manager "$B/kube-controller-manager" --kubeconfig="$R/kubeconfig" \
    --service-account-private-key-file="$R/sa.key" --use-service-account-credentials=false \
    --cluster-name=local --leader-elect=false --v=1
  start kube-scheduler "$B/kube-scheduler" --kubeconfig="$R/kubeconfig" --leader-elect=false --v=1

  # Cluster DNS: dnsmasq answers *.cluster.local from a hosts file (`cluster.sh dns` fills it).
  : > "$R/dns-hosts"
  printf 'nameserver %s\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n' $NODE_IP > "$R/resolv.conf"
  start dnsmasq /usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts --addn-hosts="$R/dns-hosts" \
    --listen-address=$NODE_IP --bind-interfaces --local=/cluster.local/ --pid-file="$R/dnsmasq.pid" \
    --user=root --log-facility=-

  mkdir -p "$R/cni" "$R/kubelet"
  cat > "$R/cni/10-loadstack.conflist" << JSON
{"cniVersion":"0.4.0","name":"loadstack","plugins":[{"type":"bridge","bridge":"cni0","isGateway":true,
 "ipMasq":false,"hairpinMode":true,"ipam":{"type":"host-local","dataDir":"$R/cni-ipam",
 "ranges":[[{"subnet":"10.244.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}]}
JSON
  cat > "$R/kubelet.yaml" << YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: $R/resolv.conf
failSwapOn: false
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
  start kubelet "$B/kubelet" --config="$R/kubelet.yaml" --kubeconfig="$R/kubeconfig" \
    --container-runtime=docker --docker-endpoint="$SOCK" \
    --network-plugin=cni --cni-bin-dir=/usr/lib/cni --cni-conf-dir="$R/cni" --cni-cache-dir="$R/cni-cache" \
    --pod-infra-container-image=k8s-local/pause:3.2 --root-dir="$R/kubelet" \
    --hostname-override=$NODE --node-ip=$NODE_IP --v=1
  start kube-proxy "$B/kube-proxy" --kubeconfig="$R/kubeconfig" --hostname-override=$NODE \
    --bind-address=$NODE_IP --cluster-cidr=10.244.0.0/16 --proxy-mode=iptables \
    --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 --v=1
  wait_for node-ready 300 sh -c "'$0' kubectl '$W' '$NS' get node $NODE \
    -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
  wait_for default-serviceaccount 120 kctl -n default get serviceaccount default
  echo "cluster up in $((SECONDS - t0)) s"
}

down() {
  [ -f "$R/pids" ] || {
    ip netns del "$NS" 2> /dev/null || true
    return 0
  }
  pid_of() { awk -v n="$1" '$1==n{print $2}' "$R/pids"; }
  # kubelet and kube-proxy first (no pod is restarted), then every container, then the rest.
  for name in kube-proxy kubelet; do
    p=$(pid_of $name)
    [ -n "$p" ] && kill "$p" 2> /dev/null || true
  done
  if docker -H "$SOCK" info > /dev/null 2>&1; then
    docker -H "$SOCK" ps -aq | xargs -r docker -H "$SOCK" rm -f > /dev/null 2>&1 || true
  fi
  tac "$R/pids" | while read -r name p; do kill "$p" 2> /dev/null || true; done
  for _ in $(seq 1 40); do
    alive=0
    while read -r name p; do kill -0 "$p" 2> /dev/null && alive=1; done < "$R/pids"
    [ $alive = 0 ] && break
    sleep 0.25
  done
  while read -r name p; do kill -0 "$p" 2> /dev/null && kill -9 "$p" 2> /dev/null; done < "$R/pids" || true
  # What the kubelet and dockerd mounted under WORK (secret tmpfs, overlay roots, bind mounts).
  grep -F " $W/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2> /dev/null || true
  ip netns del "$NS" 2> /dev/null || true
  : > "$R/pids"
}

dns() {
  kctl get svc -A -o jsonpath='{range .items[*]}{.spec.clusterIP} {.metadata.name}.{.metadata.namespace}.svc.cluster.local{"\n"}{end}' \
    | grep -v '^None' > "$R/dns-hosts.new"
  mv "$R/dns-hosts.new" "$R/dns-hosts"
  kill -HUP "$(cat "$R/dnsmasq.pid")"
}

load() {
  for image in "$@"; do
    docker save "$image" | docker -H "$SOCK" load > /dev/null
  done
}

case $cmd in
  up) up ;;
  down) down ;;
  kubectl) kctl "$@" ;;
  dns) dns ;;
  load) load "$@" ;;
  *)
    echo "usage: cluster.sh up|down|kubectl|dns|load WORK NETNS ..." >&2
    exit 2
    ;;
esac
