#!/usr/bin/env bash
# Test upstream EHR for Anchorgate: the PyPI package sekmet-fhir (FastAPI FHIR R4 server, base path /fhir).
#
#   sekmet.sh install               create/refresh the cached virtualenv (idempotent)
#   sekmet.sh start PORT WORKDIR    start a fresh-config server on 127.0.0.1:PORT, state in WORKDIR
#   sekmet.sh stop WORKDIR          stop the server started in WORKDIR (no-op if not running)
#   sekmet.sh status WORKDIR        exit 0 if the server of WORKDIR is running and answers /fhir/metadata
#   sekmet.sh venv                  print the virtualenv directory
#
# Environment:
#   ANCHORGATE_CACHE       cache root (default ~/.cache/anchorgate); venv lives in $ANCHORGATE_CACHE/sekmet-venv
#   PYTHON                 interpreter used to create the venv (default python3)
#   SEKMET_START_TIMEOUT   seconds to wait for /fhir/metadata to answer 200 (default 60)
#   SEKMET_ADVERTISED_BASE FHIR base the server puts in Location, fullUrl, Bundle.link, CapabilityStatement
#                          (default http://127.0.0.1:PORT/fhir; it always listens on 127.0.0.1:PORT)
#   SEKMET_SETTINGS_EXTRA  YAML text appended to the generated settings.yaml (a repeated top-level key wins
#                          over the default one, e.g. "server_behaviour: {absolute_references: true}")
#
# WORKDIR after start: settings.yaml, data/sekmet.db (SQLite), sekmet.pid, sekmet.log.
# Start from an empty WORKDIR (or delete WORKDIR/data) for an empty store; a reused WORKDIR keeps its data.
set -euo pipefail

SEKMET_VERSION="0.1.1"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONSTRAINTS="$HERE/sekmet-constraints.txt"
CACHE="${ANCHORGATE_CACHE:-${HOME:-/tmp}/.cache/anchorgate}"
VENV="$CACHE/sekmet-venv"
PY="${PYTHON:-python3}"

log() { echo "sekmet.sh: $*" >&2; }
die() { log "$*"; exit 1; }

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# what an install is made from: a change to the pin or the constraints file forces a reinstall
wanted_stamp() {
  local c=none
  [ -f "$CONSTRAINTS" ] && c="$(cksum <"$CONSTRAINTS" | cut -d' ' -f1)"
  echo "sekmet-fhir==$SEKMET_VERSION constraints=$c"
}

installed_version() {
  [ -x "$VENV/bin/python" ] || return 1
  [ "$(cat "$VENV/.anchorgate-stamp" 2>/dev/null || true)" = "$(wanted_stamp)" ] || return 1
  "$VENV/bin/python" - <<'EOF' 2>/dev/null
import importlib.metadata as m, importlib.util as u
assert u.find_spec("uvicorn") and u.find_spec("sekmet.main")
print(m.version("sekmet-fhir"))
EOF
}

do_install() {
  mkdir -p "$CACHE"
  # serialise concurrent installs (parallel test processes) when flock is available
  if command -v flock >/dev/null 2>&1 && [ -z "${SEKMET_INSTALL_LOCKED:-}" ]; then
    SEKMET_INSTALL_LOCKED=1 flock "$CACHE/sekmet-venv.lock" bash "$HERE/sekmet.sh" install || exit $?
    return 0
  fi
  local have
  have="$(installed_version || true)"
  if [ "$have" = "$SEKMET_VERSION" ]; then
    log "sekmet-fhir $SEKMET_VERSION already installed in $VENV"
    return 0
  fi
  log "installing sekmet-fhir==$SEKMET_VERSION into $VENV"
  rm -rf "$VENV"
  if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    if [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      log "python venv module unusable; installing python3-venv"
      apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null || die "apt-get install python3-venv failed"
      "$PY" -m venv "$VENV" || die "'$PY -m venv' failed"
    else
      die "'$PY -m venv' failed (install python3-venv)"
    fi
  fi
  local cons=()
  [ -f "$CONSTRAINTS" ] && cons=(-c "$CONSTRAINTS")
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        "sekmet-fhir==$SEKMET_VERSION" "${cons[@]}"; then
    rm -rf "$VENV"
    die "pip install sekmet-fhir==$SEKMET_VERSION failed"
  fi
  wanted_stamp >"$VENV/.anchorgate-stamp"
  have="$(installed_version || true)"
  [ "$have" = "$SEKMET_VERSION" ] || { rm -rf "$VENV"; die "install check failed (got '${have}')"; }
  log "installed sekmet-fhir $SEKMET_VERSION"
}

# pid from WORKDIR/sekmet.pid if that process is alive and is our uvicorn
running_pid() {
  local wd="$1" pid
  [ -f "$wd/sekmet.pid" ] || return 1
  pid="$(cat "$wd/sekmet.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'sekmet.main:app_factory' || return 1
  fi
  echo "$pid"
}

port_open() {  # true if a TCP connect to 127.0.0.1:PORT succeeds
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

http_status() {  # prints the HTTP status of GET url, or 000
  local url="$1"
  if command -v curl >/dev/null 2>&1; then
    local code
    code="$(curl --noproxy '*' -s -o /dev/null -m 5 -w '%{http_code}' "$url" 2>/dev/null || true)"
    echo "${code:-000}"
  else
    "$VENV/bin/python" - "$url" <<'EOF' 2>/dev/null || echo 000
import sys, urllib.request, urllib.error
try:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(sys.argv[1], timeout=5) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
  fi
}

do_start() {
  [ $# -eq 2 ] || usage
  local port="$1" wd="$2"
  [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  [ -n "$(installed_version || true)" ] || do_install
  mkdir -p "$wd"
  wd="$(cd "$wd" && pwd)"
  if pid="$(running_pid "$wd")"; then
    die "already running in $wd (pid $pid); stop it first"
  fi
  rm -f "$wd/sekmet.pid"
  if port_open "$port"; then
    die "something already listens on 127.0.0.1:$port"
  fi
  local local_base="http://127.0.0.1:$port/fhir"
  local base="${SEKMET_ADVERTISED_BASE:-$local_base}"
  base="${base%/}"
  cat >"$wd/settings.yaml" <<EOF
# generated by tests/upstream/sekmet.sh
base_url: $base
host: 127.0.0.1
port: $port
data_dir: data
log_inbound: false
simulator:
  enabled: false
server_auth:
  types: [none]
validation:
  inbound: strict
${SEKMET_SETTINGS_EXTRA:-}
EOF
  : >"$wd/sekmet.log"
  (
    cd "$wd"
    unset SEKMET_DB SEKMET_PUBLIC_URL
    export SEKMET_CONFIG=settings.yaml SEKMET_BASE_URL="$base" SEKMET_PORT="$port" PYTHONUNBUFFERED=1
    exec "$VENV/bin/uvicorn" sekmet.main:app_factory --factory --host 127.0.0.1 --port "$port" \
      --no-access-log --log-level info
  ) >>"$wd/sekmet.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$wd/sekmet.pid"
  local timeout="${SEKMET_START_TIMEOUT:-60}" start=$SECONDS code=000
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$wd/sekmet.pid"
      log "server exited during startup; last log lines:"
      tail -n 40 "$wd/sekmet.log" >&2 || true
      exit 1
    fi
    code="$(http_status "$local_base/metadata")"
    [ "$code" = 200 ] && break
    if (( SECONDS - start >= timeout )); then
      log "no 200 from $local_base/metadata after ${timeout}s (last status $code); last log lines:"
      tail -n 40 "$wd/sekmet.log" >&2 || true
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$wd/sekmet.pid"
      exit 1
    fi
    sleep 0.3
  done
  # guard against another process grabbing PORT in between: the listener must be ours
  if command -v ss >/dev/null 2>&1 && ! ss -ltnpH "sport = :$port" 2>/dev/null | grep -q "pid=$pid,"; then
    kill "$pid" 2>/dev/null || true
    rm -f "$wd/sekmet.pid"
    tail -n 40 "$wd/sekmet.log" >&2 || true
    die "127.0.0.1:$port answers but is not served by pid $pid"
  fi
  log "sekmet up at $local_base (advertised base $base, pid $pid, ${SECONDS}s)"
}

do_stop() {
  [ $# -eq 1 ] || usage
  local wd="$1" pid i
  [ -d "$wd" ] || { log "no such WORKDIR $wd; nothing to stop"; return 0; }
  if ! pid="$(running_pid "$wd")"; then
    rm -f "$wd/sekmet.pid"
    log "not running in $wd"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM for 10s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$wd/sekmet.pid"
  log "stopped pid $pid"
}

do_status() {
  [ $# -eq 1 ] || usage
  local wd="$1" pid port
  pid="$(running_pid "$wd")" || { echo "stopped"; return 1; }
  port="$(sed -n 's/^port: *//p' "$wd/settings.yaml" | head -n1)"
  if [ "$(http_status "http://127.0.0.1:$port/fhir/metadata")" = 200 ]; then
    echo "running pid=$pid url=http://127.0.0.1:$port/fhir"
  else
    echo "unhealthy pid=$pid"; return 1
  fi
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  install) do_install ;;
  start) do_start "$@" ;;
  stop) do_stop "$@" ;;
  status) do_status "$@" ;;
  venv) echo "$VENV" ;;
  *) usage ;;
esac
