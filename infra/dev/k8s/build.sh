#!/usr/bin/env bash
# Build a one-node Kubernetes (v1.20.2) for the `k8s` tests from Debian's archive only: Debian
# bookworm's `kubernetes` source package is upstream's full tree with vendor/, Debian's Go 1.19
# builds it with no Go module proxy (none is reachable here, so kind/k3s/kwok are out).
#
#   build.sh            -> $LOADSTACK_K8S_CACHE/v1.20.2/bin/{kube-apiserver,...,kubectl,pause}
#
# The cache folder (default /var/cache/loadstack-k8s, kept by a reused machine) makes a second run
# a no-op: ~9 min cold on 2 cores, <1 s cached. The source tree and Go cache are deleted after a
# successful build (2 GB); only the binaries (~420 MB) stay.
# Three fixes, each needed here:
#   1. pkg/generated/openapi is generated at build time: `make gen_openapi` first.
#   2. the vendored modern-go/reflect2 1.0.1 crashes at run time on Go >= 1.18: Debian's 1.0.2.
#   3. no CAP_SYS_RESOURCE in this VM: runc refuses a negative oom_score_adj, so the kubelet's
#      sandbox/guaranteed adjustments are set to 0 (patches/oom-score-adj.patch).
set -euo pipefail
VERSION=v1.20.2
HERE=$(dirname "$(readlink -f "$0")")
CACHE=${LOADSTACK_K8S_CACHE:-/var/cache/loadstack-k8s}
OUT=$CACHE/$VERSION
BINS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl)

have_all() {
  for b in "${BINS[@]}" pause; do [ -x "$OUT/bin/$b" ] || return 1; done
}
if have_all; then echo "cached: $OUT/bin"; exit 0; fi

t0=$(date +%s)
mkdir -p "$OUT/bin"
W=$OUT/work
# deb-src lines for `apt-get source`: the same archive and suites as the machine's own sources
if [ ! -f /etc/apt/sources.list.d/loadstack-k8s-src.sources ]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    > /etc/apt/sources.list.d/loadstack-k8s-src.sources
  apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
fi
need=()
for p in golang-go golang-github-modern-go-reflect2-dev gcc libc6-dev make rsync patch dpkg-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
    --no-install-recommends "${need[@]}" >/dev/null
fi

rm -rf "$W" && mkdir -p "$W/dl" "$W/gopath/src/k8s.io"
(cd "$W/dl" && apt-get source --download-only kubernetes >/dev/null 2>&1)
tar xzf "$W"/dl/kubernetes_*.orig.tar.gz -C "$W/gopath/src/k8s.io"
mv "$W"/gopath/src/k8s.io/kubernetes-* "$W/gopath/src/k8s.io/kubernetes"
S=$W/gopath/src/k8s.io/kubernetes
R2=/usr/share/gocode/src/github.com/modern-go/reflect2
rm -f "$S"/vendor/github.com/modern-go/reflect2/*.go "$S"/vendor/github.com/modern-go/reflect2/*.s
cp "$R2"/*.go "$R2"/*.s "$S/vendor/github.com/modern-go/reflect2/"
(cd "$S" && patch -p1 -s < "$HERE/patches/oom-score-adj.patch")
t1=$(date +%s); echo "fetch+unpack+patch: $((t1 - t0))s"

(cd "$S" && GOFLAGS= GOPROXY=off make gen_openapi > "$W/gen_openapi.log" 2>&1)
t2=$(date +%s); echo "make gen_openapi: $((t2 - t1))s"

export GOPATH=$W/gopath GOCACHE=$W/gocache GO111MODULE=off GOFLAGS= GOPROXY=off CGO_ENABLED=1
LD=""
for pkg in k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version k8s.io/kubernetes/vendor/k8s.io/component-base/version; do
  LD="$LD -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20 -X $pkg.gitTreeState=clean"
done
for t in "${BINS[@]}"; do
  s=$(date +%s)
  (cd "$S" && nice /usr/bin/go build -p 2 -tags selinux,notest -ldflags "-s -w $LD" -o "$OUT/bin/$t.tmp" "./cmd/$t")
  mv "$OUT/bin/$t.tmp" "$OUT/bin/$t"
  echo "go build $t: $(($(date +%s) - s))s"
done
# the kubelet's sandbox ("pause") image: upstream's pause.c, static
gcc -static -O2 -o "$OUT/bin/pause.tmp" "$S/build/pause/linux/pause.c"
mv "$OUT/bin/pause.tmp" "$OUT/bin/pause"
rm -rf "$W"
echo "built $VERSION in $(($(date +%s) - t0))s: $OUT/bin"
