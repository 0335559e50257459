#!/usr/bin/env bash
# A real Kubernetes control plane on this machine (127.0.0.1), for the `kubernetes` integration tests.
#
#   tests/kubernetes/cluster.sh up      build (or reuse) the pinned binaries, start etcd, kube-apiserver,
#                                       kube-controller-manager, kube-scheduler, the JobSet controller and
#                                       the fake GPU nodes' kubelet, wait until all answer
#   tests/kubernetes/cluster.sh down    stop exactly the processes `up` recorded (TERM, wait, KILL); idempotent
#   tests/kubernetes/cluster.sh status  exit 0 only if every recorded process runs and the API server answers
#   tests/kubernetes/cluster.sh build   only build (or check) the binaries
#
# Binaries: Kubernetes v1.36.3 (the release whose client the JobSet controller v0.12.0 is built with), etcd
# v3.6.8 (the one Kubernetes v1.36.3 requires) and the JobSet controller v0.12.0 (the CRD version we render
# for), built from the Go module proxy with the module in controlplane/ (go.mod + go.sum pin every source) by
# Go 1.26.8, reproducibly (-trimpath, CGO_ENABLED=0, -ldflags "-s -w"), checked against controlplane/SHA256SUMS.
# They are cached by the hash of those inputs in ${AREAL_K8S_CACHE:-$HOME/.cache/areal-compile/kubernetes}.
# Nodes have no kubelet: fake_kubelet.py (ours) registers them, runs their pods' life cycle and serves the
# pod-log endpoint the API server proxies `logs` to.
#
# Everything else lives in ${AREAL_K8S_DIR:-/tmp/areal-k8s}:
#   env.sh       `source` it: KUBECONFIG (cluster admin), AREAL_K8S_DIR; present only while up
#   pki/ etcd/ log/<name>.log, pids/<name>.pid (PIDs this script started), *.kubeconfig, tokens.csv
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
STATE_DIR="${AREAL_K8S_DIR:-/tmp/areal-k8s}"
CACHE_ROOT="${AREAL_K8S_CACHE:-$HOME/.cache/areal-compile/kubernetes}"
PORT_BASE="${AREAL_K8S_PORT_BASE:-16440}"
UP_TIMEOUT="${AREAL_K8S_UP_TIMEOUT:-120}"
GO_VERSION=go1.26.8
K8S_VERSION=v1.36.3
K8S_BUILD_DATE=2026-07-22T18:07:38Z # the v1.36.3 module's time on the Go module proxy
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler jobset-controller)

ETCD_PORT=$PORT_BASE
ETCD_PEER_PORT=$((PORT_BASE + 1))
API_PORT=$((PORT_BASE + 2))
KCM_PORT=$((PORT_BASE + 3))
SCHED_PORT=$((PORT_BASE + 4))
JOBSET_WEBHOOK_PORT=$((PORT_BASE + 5))
JOBSET_HEALTH_PORT=$((PORT_BASE + 6))
JOBSET_METRICS_PORT=$((PORT_BASE + 7))
KUBELET_PORT=$((PORT_BASE + 8))
PID_DIR="$STATE_DIR/pids"
LOG_DIR="$STATE_DIR/log"
SERVER="https://127.0.0.1:$API_PORT"

log() { printf '[kubernetes cluster.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

go_build() {
  # Build the five binaries into $1 (one `go build` so that packages compile in parallel).
  local out="$1" v=k8s.io/component-base/version
  local ld="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=36 -X $v.gitTreeState=clean"
  ld+=" -X $v.buildDate=$K8S_BUILD_DATE"
  (cd "$HERE/controlplane" && CGO_ENABLED=0 GOTOOLCHAIN="$GO_VERSION" GOFLAGS="-mod=readonly -buildvcs=false" \
    go build -trimpath -ldflags "$ld" -o "$out/" k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler sigs.k8s.io/jobset \
    go.etcd.io/etcd/server/v3)
  mv "$out/server" "$out/etcd"
  mv "$out/jobset" "$out/jobset-controller"
}

build_key() {
  # Everything a binary depends on: the pinned sources, the expected hashes, the toolchain, this script's flags.
  local d="$HERE/controlplane"
  { cat "$d/go.mod" "$d/go.sum" "$d/SHA256SUMS"; echo "$GO_VERSION $K8S_VERSION"; declare -f go_build; } |
    sha256sum | cut -c1-16
}

BIN_DIR="$CACHE_ROOT/$(build_key)"

binaries_ok() { (cd "$BIN_DIR" 2>/dev/null && sha256sum --quiet -c "$HERE/controlplane/SHA256SUMS" >/dev/null 2>&1); }

cmd_build() {
  if binaries_ok; then
    log "binaries cached in $BIN_DIR"
    return 0
  fi
  command -v go >/dev/null || die "Go is needed to build the control plane (any Go >= 1.21 fetches $GO_VERSION)"
  local t0=$SECONDS tmp="$BIN_DIR.tmp.$$"
  log "building Kubernetes $K8S_VERSION, etcd, the JobSet controller with $GO_VERSION into $BIN_DIR"
  rm -rf "$tmp" && mkdir -p "$tmp"
  go_build "$tmp" || { rm -rf "$tmp"; die "the build failed (its output is above)"; }
  if ! (cd "$tmp" && sha256sum --quiet -c "$HERE/controlplane/SHA256SUMS"); then
    (cd "$tmp" && sha256sum "${BINARIES[@]}") >&2
    rm -rf "$tmp"
    die "the binaries built differ from controlplane/SHA256SUMS (above: what was built)"
  fi
  rm -rf "$BIN_DIR" && mv "$tmp" "$BIN_DIR"
  log "built in $((SECONDS - t0)) s"
}

# ---- running it -------------------------------------------------------------------------------------------------

pki() {
  # A CA for every serving certificate (API server, the JobSet webhook, the fake kubelet) and the service-account
  # key pair; made once per state dir.
  local d="$STATE_DIR/pki" name
  [[ -s "$d/ca.crt" ]] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=areal-test-ca -keyout "$d/ca.key" \
    -out "$d/ca.crt" 2>/dev/null
  for name in apiserver webhook kubelet; do
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
    openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
      -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n') \
      -out "$d/$name.crt" 2>/dev/null
  done
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

write_config() {
  # The admin token (system:masters), its kubeconfig, cluster.json (what the Python helpers read), the JobSet
  # controller's configuration.
  local token
  if [[ ! -s "$STATE_DIR/tokens.csv" ]]; then
    token="$(openssl rand -hex 24)"
    printf '%s,areal-admin,areal-admin,system:masters\n' "$token" >"$STATE_DIR/tokens.csv"
    chmod 600 "$STATE_DIR/tokens.csv"
  fi
  token="$(cut -d, -f1 "$STATE_DIR/tokens.csv")"
  cat >"$STATE_DIR/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: areal-test, cluster: {server: "$SERVER", certificate-authority: "$STATE_DIR/pki/ca.crt"}}]
users: [{name: areal-admin, user: {token: "$token"}}]
contexts: [{name: areal-test, context: {cluster: areal-test, user: areal-admin}}]
current-context: areal-test
EOF
  chmod 600 "$STATE_DIR/admin.kubeconfig"
  cat >"$STATE_DIR/cluster.json" <<EOF
{"server": "$SERVER", "admin_token": "$token", "ca_file": "$STATE_DIR/pki/ca.crt",
 "kubelet_port": $KUBELET_PORT, "kubelet_cert": "$STATE_DIR/pki/kubelet.crt",
 "kubelet_key": "$STATE_DIR/pki/kubelet.key", "webhook_port": $JOBSET_WEBHOOK_PORT, "version": "$K8S_VERSION"}
EOF
  chmod 600 "$STATE_DIR/cluster.json"
  mkdir -p "$STATE_DIR/webhook-certs"
  cp "$STATE_DIR/pki/webhook.crt" "$STATE_DIR/webhook-certs/tls.crt"
  cp "$STATE_DIR/pki/webhook.key" "$STATE_DIR/webhook-certs/tls.key"
  cat >"$STATE_DIR/jobset-config.yaml" <<EOF
apiVersion: config.jobset.x-k8s.io/v1alpha1
kind: Configuration
leaderElection: {leaderElect: false}
internalCertManagement: {enable: false}
webhook: {host: 127.0.0.1, port: $JOBSET_WEBHOOK_PORT, certDir: "$STATE_DIR/webhook-certs"}
metrics: {bindAddress: "127.0.0.1:$JOBSET_METRICS_PORT"}
health: {healthProbeBindAddress: "127.0.0.1:$JOBSET_HEALTH_PORT"}
EOF
}

alive() {
  # alive NAME: the PID recorded for NAME runs the command line we started (guards against PID reuse).
  local f="$PID_DIR/$1.pid" pid
  [[ -s "$f" ]] || return 1
  pid="$(head -n1 "$f")"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(sed -n 2p "$f")"
}

start() {
  # start NAME PROGRAM ARGS...: in the background, its output in log/NAME.log, its PID and command line recorded.
  local name="$1"
  shift
  if alive "$name"; then
    log "$name already running (pid $(head -n1 "$PID_DIR/$name.pid"))"
    return 0
  fi
  "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  printf '%s\n%s\n' "$!" "$*" >"$PID_DIR/$name.pid"
}

wait_until() {
  # wait_until NAME WHAT COMMAND...: poll COMMAND until it succeeds; if NAME dies or time runs out, show its
  # log, stop everything and fail.
  local name="$1" what="$2" deadline=$((SECONDS + UP_TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name" || ((SECONDS >= deadline)); then
      tail -n 40 "$LOG_DIR/$name.log" >&2 || true
      local why="(it exited)"
      alive "$name" && why="within $UP_TIMEOUT s"
      cmd_down
      die "$name $what $why; its log is above"
    fi
    sleep 0.3
  done
}

api_get() {
  curl -fsS --cacert "$STATE_DIR/pki/ca.crt" -H "Authorization: Bearer $(cut -d, -f1 "$STATE_DIR/tokens.csv")" \
    "$SERVER$1"
}

start_all() {
  local bin="$BIN_DIR" py="${PYTHON:-python3}"
  start etcd "$bin/etcd" --name areal-test --data-dir "$STATE_DIR/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "areal-test=http://127.0.0.1:$ETCD_PEER_PORT"
  wait_until etcd "did not answer" curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
  # GOMEMLIMIT keeps the API server's heap modest on a shared machine.
  GOMEMLIMIT=768MiB start kube-apiserver "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$STATE_DIR/pki/apiserver.crt" --tls-private-key-file "$STATE_DIR/pki/apiserver.key" \
    --token-auth-file "$STATE_DIR/tokens.csv" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$STATE_DIR/pki/sa.pub" \
    --service-account-signing-key-file "$STATE_DIR/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none \
    --kubelet-certificate-authority "$STATE_DIR/pki/ca.crt" --kubelet-preferred-address-types InternalIP \
    --profiling=false
  wait_until kube-apiserver "did not become ready" api_get /readyz
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$STATE_DIR/admin.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false --controllers '*,-nodelifecycle' \
    --service-account-private-key-file "$STATE_DIR/pki/sa.key" --root-ca-file "$STATE_DIR/pki/ca.crt" \
    --profiling=false
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$STATE_DIR/admin.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false --profiling=false
  wait_until kube-controller-manager "did not become healthy" curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz"
  wait_until kube-scheduler "did not become healthy" curl -fsSk "https://127.0.0.1:$SCHED_PORT/healthz"
  "$py" "$HERE/bootstrap.py" "$STATE_DIR" >&2 || { cmd_down; die "installing the JobSet CRD and webhooks failed"; }
  KUBECONFIG="$STATE_DIR/admin.kubeconfig" start jobset-controller "$bin/jobset-controller" \
    --config "$STATE_DIR/jobset-config.yaml"
  wait_until jobset-controller "did not become ready" curl -fsS "http://127.0.0.1:$JOBSET_HEALTH_PORT/readyz"
  start fake-kubelet "$py" "$HERE/fake_kubelet.py" "$STATE_DIR"
  wait_until fake-kubelet "did not register its nodes" grep -q registered "$LOG_DIR/fake-kubelet.log"
}

cmd_up() {
  local t0=$SECONDS version
  cmd_build
  local t1=$SECONDS
  mkdir -p "$STATE_DIR" "$PID_DIR" "$LOG_DIR"
  pki
  write_config
  start_all
  cat >"$STATE_DIR/env.sh" <<EOF
# Source me: the Kubernetes test control plane (written by tests/kubernetes/cluster.sh up).
export AREAL_K8S_DIR="$STATE_DIR"
export KUBECONFIG="$STATE_DIR/admin.kubeconfig"
EOF
  version="$(api_get /version | "${PYTHON:-python3}" -c 'import json, sys; print(json.load(sys.stdin)["gitVersion"])')"
  echo "Server Version: $version"
  log "up in $((SECONDS - t1)) s (plus $((t1 - t0)) s to build or check the binaries)"
  log "use it with: source $STATE_DIR/env.sh"
}

STOP_ORDER=(fake-kubelet jobset-controller kube-scheduler kube-controller-manager kube-apiserver etcd)

cmd_down() {
  local name pid i stopped=()
  rm -f "$STATE_DIR/env.sh"
  for name in "${STOP_ORDER[@]}"; do
    if alive "$name"; then
      pid="$(head -n1 "$PID_DIR/$name.pid")"
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) still alive 10 s after TERM; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
      stopped+=("$name:$pid")
    fi
    rm -f "$PID_DIR/$name.pid"
  done
  rm -rf "$STATE_DIR/etcd" # the cluster's data goes with it: the next `up` starts empty (PKI and tokens stay)
  log "down (stopped ${stopped[*]:-nothing})"
}

cmd_status() {
  local name bad=0
  for name in "${STOP_ORDER[@]}"; do
    if alive "$name"; then
      echo "$name running (pid $(head -n1 "$PID_DIR/$name.pid"))"
    else
      echo "$name not running"
      bad=1
    fi
  done
  if api_get /readyz >/dev/null 2>&1; then echo "API server ready at $SERVER"; else
    echo "API server not answering at $SERVER"
    bad=1
  fi
  return "$bad"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  build) cmd_build ;;
  *)
    echo "usage: $0 up|down|status|build   (state dir: \${AREAL_K8S_DIR:-/tmp/areal-k8s})" >&2
    exit 2
    ;;
esac
