#!/usr/bin/env bash
# Real Ray head node on this machine (127.0.0.1, 8 logical GPUs), for the `ray` integration tests.
#
#   tests/ray/cluster.sh up      install ray[default] into its own venv if needed, start `ray start --head
#                                --block` in the background, wait until the Jobs API answers
#   tests/ray/cluster.sh down    stop exactly the process `up` recorded (its process group: TERM, wait, KILL)
#   tests/ray/cluster.sh status  exit 0 only if the recorded head runs and the Jobs API answers
#
# Everything lives in ${AREAL_RAY_DIR:-/tmp/areal-ray}:
#   venv/        Ray's own virtual environment (never the project's)
#   env.sh       `source` it: AREAL_RAY_ADDRESS (dashboard URL), AREAL_RAY_PYTHON (the venv's python);
#                present only while the head is up (`down` removes it)
#   tmp/         Ray's --temp-dir (session logs), head.log (the head's own output), head.pid
set -euo pipefail

STATE_DIR="${AREAL_RAY_DIR:-/tmp/areal-ray}"
PORT="${AREAL_RAY_DASHBOARD_PORT:-8265}"
GCS_PORT="${AREAL_RAY_GCS_PORT:-6379}"
UP_TIMEOUT="${AREAL_RAY_UP_TIMEOUT:-90}"
RAY_SPEC="${AREAL_RAY_SPEC:-ray[default]==2.*}"
# Logical resources: 8 GPUs of type H100 (label and resource, as Ray reports real ones), and more CPUs than
# the machine's 2 cores so that experiments with a few roles can be placed (Ray counts, it does not measure).
CPUS="${AREAL_RAY_CPUS:-16}"
ACCEL=H100
VENV="$STATE_DIR/venv"
PID_FILE="$STATE_DIR/head.pid"
ADDRESS="http://127.0.0.1:$PORT"

log() { printf '[ray cluster.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

head_alive() {
  # The recorded PID exists and still runs `ray start` (guards against PID reuse).
  local pid
  [[ -s "$PID_FILE" ]] || return 1
  pid="$(head -n1 "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'ray start --head'
}

jobs_api_answers() {
  "$VENV/bin/python" - "$ADDRESS" <<'EOF' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/api/version", timeout=3) as r:
    json.load(r)["ray_version"]
with urllib.request.urlopen(sys.argv[1] + "/api/jobs/", timeout=3) as r:
    json.load(r)
EOF
}

install_ray() {
  if [[ -x "$VENV/bin/ray" ]]; then return 0; fi
  local t0=$SECONDS
  log "installing $RAY_SPEC into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet "$RAY_SPEC"
  log "installed Ray $("$VENV/bin/python" -c 'import ray; print(ray.__version__)') in $((SECONDS - t0)) s"
}

start_head() {
  mkdir -p "$STATE_DIR/tmp"
  # setsid: the head and everything it spawns share one process group that `down` stops by its id.
  # The venv leads PATH so job entrypoints run with the venv's python (and `ray` importable).
  # RAY_memory_monitor_refresh_ms=0: no OOM killer. It judges the whole machine's memory, so on a shared
  # machine a neighbour's burst would kill this cluster's test workers.
  PATH="$VENV/bin:$PATH" RAY_USAGE_STATS_ENABLED=0 RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_memory_monitor_refresh_ms=0 \
    setsid "$VENV/bin/ray" start --head --block --node-ip-address 127.0.0.1 --port "$GCS_PORT" \
    --num-cpus "$CPUS" --num-gpus 8 --labels "ray.io/accelerator-type=$ACCEL" \
    --resources "{\"accelerator_type:$ACCEL\": 1}" --disable-usage-stats --include-dashboard true \
    --dashboard-host 127.0.0.1 --dashboard-port "$PORT" --temp-dir "$STATE_DIR/tmp" \
    >"$STATE_DIR/head.log" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
}

wait_ready() {
  # Until the Jobs API answers; on failure, stop what `up` started (nothing is left running) and fail.
  local deadline=$((SECONDS + UP_TIMEOUT)) why="the Jobs API at $ADDRESS did not answer within $UP_TIMEOUT s"
  while ((SECONDS < deadline)); do
    if ! kill -0 "$(head -n1 "$PID_FILE")" 2>/dev/null; then
      why="ray start exited"
      break
    fi
    if jobs_api_answers; then return 0; fi
    sleep 0.5
  done
  tail -n 30 "$STATE_DIR/head.log" >&2
  cmd_down
  die "$why (its log is above)"
}

cmd_up() {
  local t0=$SECONDS
  mkdir -p "$STATE_DIR"
  install_ray
  local t1=$SECONDS
  if head_alive; then
    log "head already running (pid $(head -n1 "$PID_FILE"))"
  else
    start_head
  fi
  wait_ready
  log "head answers after $((SECONDS - t1)) s (pid $(head -n1 "$PID_FILE"))"
  cat >"$STATE_DIR/env.sh" <<EOF
# Source me: the Ray test head node (written by tests/ray/cluster.sh up).
export AREAL_RAY_DIR="$STATE_DIR"
export AREAL_RAY_ADDRESS="$ADDRESS"
export AREAL_RAY_PYTHON="$VENV/bin/python"
EOF
  log "up in $((SECONDS - t0)) s; use it with: source $STATE_DIR/env.sh"
}

group_alive() { kill -0 -- "-$1" 2>/dev/null; }

cmd_down() {
  local pid i
  rm -f "$STATE_DIR/env.sh"
  # A head that has not exec'ed `ray start` yet (cmdline still bash's) is ours too: it is in the PID file.
  if ! head_alive && ! { [[ -s "$PID_FILE" ]] && group_alive "$(head -n1 "$PID_FILE")"; }; then
    log "no recorded head running"
    rm -f "$PID_FILE"
    return 0
  fi
  pid="$(head -n1 "$PID_FILE")"
  # `ray start --block` stops its daemons itself on TERM (~4 s); TERMing the whole group at once makes them
  # hang. The head was started with setsid, so whatever is left in its process group is ours: KILL it.
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do
    group_alive "$pid" || break
    sleep 0.1
  done
  if group_alive "$pid"; then
    log "process group $pid still alive 20 s after TERM; sending KILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  log "down (stopped process group $pid)"
}

cmd_status() {
  head_alive || { echo "head not running"; return 1; }
  jobs_api_answers || { echo "head pid $(head -n1 "$PID_FILE") runs but $ADDRESS does not answer"; return 1; }
  echo "head running (pid $(head -n1 "$PID_FILE")), Jobs API at $ADDRESS"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up|down|status   (state dir: \${AREAL_RAY_DIR:-/tmp/areal-ray})" >&2
    exit 2
    ;;
esac
