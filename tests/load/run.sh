#!/usr/bin/env bash
# Anchorgate on-demand load harness (NOT run in CI).
#
# Compares three ways of reaching the same canned FHIR server:
#   direct      wrk -> static upstream (nginx serving canned Synthea JSON)
#   nginx       wrk -> nginx reverse proxy (keepalive to upstream) -> upstream
#   anchorgate  wrk -> target/release/anchorgate                   -> upstream
# for a Patient read and a 50-entry searchset Bundle, at several concurrency
# levels, and writes tests/load/RESULTS.md.
#
# Usage (from anywhere):   tests/load/run.sh
#
# Environment knobs (all optional):
#   LOAD_DURATION=10s         length of each timed wrk run (wrk syntax: 10s, 1m)
#   LOAD_WARMUP=2s            untimed warm-up per target and case
#   LOAD_CONNS="1 16 64"      wrk connection counts
#   LOAD_MODERATE_CONNS=16    concurrency at which the "<1 ms added p99" target is judged
#   LOAD_CASES="read search"  add "create" for the POST /fhir/Patient write path
#   LOAD_SKIP_GATEWAY=1       only direct vs nginx (gateway not built/started)
#   LOAD_SKIP_BUILD=1         use the existing target/release/anchorgate
#   LOAD_GATEWAY_BIN=PATH     use this gateway binary instead (implies LOAD_SKIP_BUILD=1)
#   LOAD_FLOOR=1              also time "floor": gateway/examples/floor_proxy.rs, a bare hyper proxy that
#                             collects each response whole (the ceiling of any gateway on these crates),
#                             and "bound": the same proxy plus the least per-request work the issues
#                             mandate (JSON parse of bodies, base-R4 validation of request bodies, the
#                             canonical form of a created version, a durable salted commitment per
#                             decision and per created version, a stored decision record); see
#                             floor_proxy.rs
#   LOAD_GW_EXTRA_TOML=TOML   appended to the main gateway's configuration (experiments; noted nowhere
#                             else in the report, so say what was set when quoting its figures)
#   LOAD_ALLOW_LEAK=1         only warn (instead of failing) if the gateway leaks the upstream base
#   LOAD_WORKERS=1            nginx peer worker_processes == ANCHORGATE_WORKER_THREADS
#   LOAD_WRK_THREADS=1        wrk threads (capped at the connection count)
#   LOAD_PIN=auto|0|1         CPU pinning with taskset (auto: on when >= 2 CPUs)
#   LOAD_CPU_PROXY=0          CPU for the proxy under test (nginx peer / anchorgate)
#   LOAD_CPU_UPSTREAM=1       CPU for the static upstream nginx
#   LOAD_CPU_WRK=1            CPU for wrk
#   LOAD_MAX_BUSY=10          machine-wide CPU busy % (measured with the harness idle) above
#                             which the machine counts as "not quiet" (warning + note in report)
#   LOAD_WAIT_IDLE=0          seconds to wait for the machine to become quiet before timing
#   LOAD_MAX_OTHER=0.1        CPU (in cores) other processes may use during a timed run; a
#                             (case, concurrency) cell exceeding it is repeated ...
#   LOAD_RETRIES=2            ... at most this many times, then kept and flagged
#   LOAD_ROUNDS=1             repeat the whole matrix; the report shows, per cell and target,
#                             the run with the median rps (3 gives much steadier ratios)
#   LOAD_DATA=DIR             Synthea ndjson dir, *.ndjson or *.ndjson.gz (default the repository's
#                             tests/data/synthea/ndjson; ../shared/data/synthea/ndjson-10-patients
#                             is the full export, with the same patient and Encounters served)
#   LOAD_RESULTS_MD=FILE      where to write the report (default tests/load/RESULTS.md)
#   LOAD_KEEP_TMP=1           keep the temp dir (configs, logs, raw results)
#   LOAD_BUILD_TIMEOUT=1800   seconds allowed for cargo build
#   LOAD_GW_LOG=warn          ANCHORGATE_LOG for the gateway (warn: no per-request log lines,
#                             like the nginx peer's access_log off)
#   LOAD_GW_STARTUP_TIMEOUT=30  seconds to wait for the gateway's /healthz
#
# All traffic stays on 127.0.0.1; every process started here is stopped on exit.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

DATA=${LOAD_DATA:-$REPO/tests/data/synthea/ndjson}
DURATION=${LOAD_DURATION:-10s}
WARMUP=${LOAD_WARMUP:-2s}
CONNS=${LOAD_CONNS:-"1 16 64"}
MODERATE_CONNS=${LOAD_MODERATE_CONNS:-16}
CASES=${LOAD_CASES:-"read search"}
SKIP_GW=${LOAD_SKIP_GATEWAY:-0}
SKIP_BUILD=${LOAD_SKIP_BUILD:-0}
ALLOW_LEAK=${LOAD_ALLOW_LEAK:-0}
WORKERS=${LOAD_WORKERS:-1}
WRK_THREADS=${LOAD_WRK_THREADS:-1}
PIN=${LOAD_PIN:-auto}
CPU_PROXY=${LOAD_CPU_PROXY:-0}
CPU_UPSTREAM=${LOAD_CPU_UPSTREAM:-1}
CPU_WRK=${LOAD_CPU_WRK:-1}
OUT_MD=${LOAD_RESULTS_MD:-$HERE/RESULTS.md}
KEEP_TMP=${LOAD_KEEP_TMP:-0}
BUILD_TIMEOUT=${LOAD_BUILD_TIMEOUT:-1800}
MAX_BUSY=${LOAD_MAX_BUSY:-10}
WAIT_IDLE=${LOAD_WAIT_IDLE:-0}
GW_LOG=${LOAD_GW_LOG:-warn}
MAX_OTHER=${LOAD_MAX_OTHER:-0.1}
RETRIES=${LOAD_RETRIES:-2}
ROUNDS=${LOAD_ROUNDS:-1}
GW_BIN=${LOAD_GATEWAY_BIN:-$REPO/target/release/anchorgate}
[ -n "${LOAD_GATEWAY_BIN:-}" ] && SKIP_BUILD=1
FLOOR=${LOAD_FLOOR:-1}
FLOOR_BIN=$REPO/target/release/examples/floor_proxy

log() { printf '[load %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# wrk duration ("10s", "1m", "10") -> whole seconds, for timeouts.
dur_secs() {
  case $1 in
    *ms) echo 1 ;;
    *s) echo "${1%s}" ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *h) echo $(( ${1%h} * 3600 )) ;;
    *) echo "$1" ;;
  esac
}

# --------------------------------------------------------------- tools
ensure_tools() {
  NGINX=$(command -v nginx || true)
  [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
  if [ -z "$NGINX" ] || ! command -v wrk >/dev/null; then
    log "nginx and/or wrk missing: installing nginx-light wrk with apt-get"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null || die "need root or sudo to apt-get install nginx-light wrk"
      sudo=sudo
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y nginx-light wrk; then
      $sudo apt-get update && $sudo apt-get install -y nginx-light wrk \
        || die "apt-get install nginx-light wrk failed"
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  fi
  [ -x "$NGINX" ] || die "nginx not found after install"
  command -v wrk >/dev/null || die "wrk not found after install"
  command -v python3 >/dev/null || die "python3 is required"
  if [ "$PIN" = auto ]; then
    if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then PIN=1; else PIN=0; fi
  fi
}

# Command prefix pinning to CPU $1 (empty when pinning is off). Used as an
# array so that "cmd &" forks+execs directly and $! is the real process.
pin_prefix() { # cpu -> sets PIN_CMD
  PIN_CMD=()
  if [ "$PIN" = 1 ]; then PIN_CMD=(taskset -c "$1"); fi
}

# --------------------------------------------------------------- processes
# true if pid runs (an exited-but-unreaped child is a zombie, state Z: not alive)
is_alive() {
  local st
  st=$(sed 's/.*) //' /proc/"$1"/stat 2>/dev/null | cut -c1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

PIDS=()
TMP=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local all=() p c
  # a wrk run in flight (timeout passes the signal on to wrk)
  [ -n "${WRK_PID:-}" ] && kill -TERM "$WRK_PID" 2>/dev/null
  for p in "${PIDS[@]}"; do
    all+=("$p")
    # nginx workers: remember them in case the master has to be SIGKILLed
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do all+=("$c"); done
  done
  if [ ${#PIDS[@]} -gt 0 ]; then
    log "stopping ${#PIDS[@]} background process(es)"
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    local i alive
    for i in $(seq 1 50); do
      alive=0
      for p in "${all[@]}"; do is_alive "$p" && alive=1; done
      [ $alive = 0 ] && break
      sleep 0.1
    done
    for p in "${all[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  fi
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "$KEEP_TMP" = 1 ] || [ $rc != 0 ]; then
      log "temp dir kept: $TMP"
    else
      rm -rf "$TMP"
    fi
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# nginx master + its workers
nginx_pids() { echo "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); }

# Sum of utime+stime clock ticks over the given pids (all threads included).
cpu_ticks() {
  local p t sum=0
  for p in "$@"; do
    # fields after "(comm)": state=1 ... utime=12 stime=13
    t=$(sed 's/.*) //' /proc/"$p"/stat 2>/dev/null | awk '{print $12 + $13}') || t=0
    sum=$((sum + ${t:-0}))
  done
  echo $sum
}

# Machine-wide busy clock ticks (user+nice+system+steal, all CPUs).
sys_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $9; exit}' /proc/stat; }

# CHILD_TICKS := CPU ticks used so far by this shell's reaped children (e.g. finished
# wrk runs). Must not run in a $(...) subshell: `times` would report the subshell.
CLK_TCK=$(getconf CLK_TCK)
child_ticks() {
  { times; } >"$TMP/times"
  CHILD_TICKS=$(awk -v hz="$CLK_TCK" 'NR == 2 {
      n = split($0, f, " "); t = 0
      for (i = 1; i <= n; i++) { split(f[i], ms, "m"); t += ms[1] * 60 + ms[2] }
      printf "%d\n", t * hz }' "$TMP/times")
}

# Sum of a /proc/<pid>/status field (kB) over pids.
mem_kb() {
  local field=$1 p v sum=0; shift
  for p in "$@"; do
    v=$(awk -v f="$field:" '$1 == f {print $2}' /proc/"$p"/status 2>/dev/null) || v=0
    sum=$((sum + ${v:-0}))
  done
  echo $sum
}

start_nginx() { # name conf cpu -> sets LAST_PID
  local name=$1 conf=$2 cpu=$3
  pin_prefix "$cpu"
  "${PIN_CMD[@]}" "$NGINX" -e "$TMP/$name/error.log" -p "$TMP/$name" -c "$conf" -g 'daemon off;' \
    >"$TMP/$name/stdout.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

wait_ready() { # url secs pid logfile what
  if ! python3 "$HERE/harness.py" wait-http "$1" "$2" "$3"; then
    log "---- last lines of $4 ----"; tail -n 30 "$4" >&2 || true
    die "$5 did not become ready"
  fi
}

# ====================================================================== main
ensure_tools
[ -f "$DATA/Patient.000.ndjson" ] || [ -f "$DATA/Patient.000.ndjson.gz" ] \
  || die "Synthea data not found in $DATA (set LOAD_DATA; the repository's copy is tests/data/synthea/ndjson)"
for c in $CONNS; do [[ $c =~ ^[0-9]+$ ]] && [ "$c" -ge 1 ] || die "bad LOAD_CONNS entry: $c"; done
DUR_S=$(dur_secs "$DURATION"); WARM_S=$(dur_secs "$WARMUP")
[[ $DUR_S =~ ^[0-9]+$ ]] && [[ $WARM_S =~ ^[0-9]+$ ]] || die "bad LOAD_DURATION/LOAD_WARMUP"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] && [[ $RETRIES =~ ^[0-9]+$ ]] || die "bad LOAD_ROUNDS/LOAD_RETRIES"

# Build first, so a broken gateway fails fast and the build never overlaps the timing.
if [ "$SKIP_GW" != 1 ]; then
  if [ "$SKIP_BUILD" != 1 ]; then
    command -v cargo >/dev/null || die "cargo not found (install Rust, or LOAD_SKIP_BUILD=1 with a prebuilt binary, or LOAD_SKIP_GATEWAY=1)"
    log "building the gateway: cargo build --release -p anchorgate --bin anchorgate --example floor_proxy"
    (cd "$REPO" && timeout "$BUILD_TIMEOUT" cargo build --release -p anchorgate --bin anchorgate --example floor_proxy) \
      || die "gateway build failed: 'cargo build --release -p anchorgate' (LOAD_SKIP_GATEWAY=1 benchmarks direct vs nginx only)"
  fi
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/anchorgate-load.XXXXXX")
chmod 755 "$TMP"
mkdir -p "$TMP"/{canned,upstream,peer,gw/data}
RESULTS=$TMP/results.jsonl
: >"$RESULTS"

read -r UP_PORT PEER_PORT GW_PORT GW2_PORT GW3_PORT FLOOR_PORT BOUND_PORT < <(python3 "$HERE/harness.py" ports 7)
UP_BASE=http://127.0.0.1:$UP_PORT/fhir
PEER_BASE=http://127.0.0.1:$PEER_PORT/fhir
GW_BASE=http://127.0.0.1:$GW_PORT/fhir
GW2_BASE=http://127.0.0.1:$GW2_PORT/fhir
GW3_BASE=http://127.0.0.1:$GW3_PORT/fhir
FLOOR_BASE=http://127.0.0.1:$FLOOR_PORT/fhir
BOUND_BASE=http://127.0.0.1:$BOUND_PORT/fhir
log "temp dir $TMP; ports: upstream=$UP_PORT nginx=$PEER_PORT anchorgate=$GW_PORT; pinning=$PIN"

# ---------------------------------------------------------- canned data
python3 "$HERE/gen_canned.py" --data "$DATA" --upstream-base "$UP_BASE" --out "$TMP/canned"
# shellcheck disable=SC1091
. "$TMP/canned/canned.env"
PID_=$CANNED_PATIENT_ID

# nginx runs its workers as "nobody" when started as root; keep them as us.
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"

common_main() { # name
  cat <<EOF
$USER_LINE
worker_processes $2;
pid $TMP/$1/nginx.pid;
error_log $TMP/$1/error.log warn;
events { worker_connections 4096; }
EOF
}
common_http() { # name
  cat <<EOF
    access_log off;
    client_body_temp_path $TMP/$1/client_body;
    proxy_temp_path $TMP/$1/proxy;
    fastcgi_temp_path $TMP/$1/fastcgi;
    uwsgi_temp_path $TMP/$1/uwsgi;
    scgi_temp_path $TMP/$1/scgi;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    server_tokens off;
EOF
}

# ---------------------------------------------------------- nginx #1: static upstream
cat >"$TMP/upstream/nginx.conf" <<EOF
$(common_main upstream 1)
http {
$(common_http upstream)
    types { }
    default_type "application/fhir+json;charset=utf-8";
    sendfile on;
    # NOT tcp_nopush: TCP_CORK on the proxies' pooled keepalive connections held back the
    # tail of the 88 KB Bundle and produced ~40 ms p99 spikes through *both* proxies.
    tcp_nopush off;
    open_file_cache max=64 inactive=1h;
    open_file_cache_valid 1h;
    client_max_body_size 10m;

    server {
        listen 127.0.0.1:$UP_PORT;
        root $TMP/canned;
        etag off;

        location = /fhir/metadata {
            try_files /metadata.json =404;
        }
        # read: any id serves the canned patient
        location ~ "^/fhir/Patient/[A-Za-z0-9.-]{1,64}\$" {
            add_header ETag 'W/"1"';
            try_files /patient.json =404;
        }
        # search: any query serves the canned 50-entry Bundle
        location = /fhir/$CANNED_SEARCH_TYPE {
            try_files /search50.json =404;
        }
        # create: the static module answers POST with 405; error_page turns that
        # into an internal GET of the canned body with status 201 + Location.
        location = /fhir/Patient {
            limit_except POST { deny all; }
            error_page 405 =201 /_created;
            try_files /patient-created.json =404;
        }
        location = /_created {
            internal;
            # Every create is a new resource, as in a real EHR: the id becomes the request id, so the
            # gateway anchors a new version per request (the same id twice would be anchored once).
            add_header Location "$UP_BASE/Patient/\$request_id/_history/1";
            add_header ETag 'W/"1"';
            sub_filter_types *;
            sub_filter_once on;
            sub_filter '"id":"$PID_"' '"id":"\$request_id"';
            try_files /patient-created.json =404;
        }
        location / { return 404; }
    }
}
EOF

# ---------------------------------------------------------- nginx #2: peer proxy
cat >"$TMP/peer/nginx.conf" <<EOF
$(common_main peer "$WORKERS")
http {
$(common_http peer)
    upstream fhir_upstream {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 75s;
    }
    server {
        listen 127.0.0.1:$PEER_PORT;
        client_max_body_size 10m;
        location / {
            proxy_pass http://fhir_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # enough memory buffers for the ~90 KB Bundle: never spill to disk
            proxy_buffer_size 16k;
            proxy_buffers 16 16k;
            proxy_busy_buffers_size 32k;
            proxy_max_temp_file_size 0;
        }
    }
}
EOF

for n in upstream peer; do
  "$NGINX" -t -q -e "$TMP/$n/error.log" -p "$TMP/$n" -c "$TMP/$n/nginx.conf" \
    || die "invalid generated nginx config $TMP/$n/nginx.conf"
done

start_nginx upstream "$TMP/upstream/nginx.conf" "$CPU_UPSTREAM"; UP_PID=$LAST_PID
wait_ready "$UP_BASE/metadata" 10 "$UP_PID" "$TMP/upstream/error.log" "static upstream nginx"
start_nginx peer "$TMP/peer/nginx.conf" "$CPU_PROXY"; PEER_PID=$LAST_PID
wait_ready "$PEER_BASE/metadata" 10 "$PEER_PID" "$TMP/peer/error.log" "nginx peer proxy"
log "nginx upstream (pid $UP_PID) and nginx peer proxy (pid $PEER_PID) up"

# ---------------------------------------------------------- the floor
TARGETS="direct nginx"
FLOOR_PID=""
BOUND_PID=""
# start_reference NAME PORT BASE [ARGS...]: floor_proxy as target NAME on the proxy core; sets STARTED_PID.
start_reference() {
  local name=$1 port=$2 base=$3
  shift 3
  "${PIN_CMD[@]}" "$FLOOR_BIN" "127.0.0.1:$port" "127.0.0.1:$UP_PORT" "$@" >"$TMP/$name.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  wait_ready "$base/metadata" 10 "$STARTED_PID" "$TMP/$name.log" "$name proxy"
  TARGETS="$TARGETS $name"
  log "$name proxy (pid $STARTED_PID) up"
}
if [ "$FLOOR" = 1 ] && [ -x "$FLOOR_BIN" ]; then
  pin_prefix "$CPU_PROXY"
  start_reference floor "$FLOOR_PORT" "$FLOOR_BASE"
  FLOOR_PID=$STARTED_PID
  start_reference bound "$BOUND_PORT" "$BOUND_BASE" --bound "$TMP/bound"
  BOUND_PID=$STARTED_PID
elif [ "$FLOOR" = 1 ]; then
  log "no $FLOOR_BIN (cargo build --release --example floor_proxy): the floor is not timed"
fi

# ---------------------------------------------------------- the gateway
GW_PID=""
GW2_PID=""
GW3_PID=""
GW_NOTE=""
if [ "$SKIP_GW" = 1 ]; then
  GW_NOTE="LOAD_SKIP_GATEWAY=1"
  log "LOAD_SKIP_GATEWAY=1: benchmarking direct and nginx only"
else
  [ -x "$GW_BIN" ] || die "gateway binary $GW_BIN missing (build it, or LOAD_SKIP_GATEWAY=1)"
  # Same CPU budget as the nginx peer: $WORKERS worker thread(s), same pinned core.
  # Logging at warn (no per-request lines): the nginx peer runs with access_log off.
  pin_prefix "$CPU_PROXY"
  # Identity: every FHIR request needs a token. One throw-away test issuer, one audience for all the
  # gateways (their public bases differ by port), the repository's partner registry, and the opt-out
  # default policy (the canned patient has no consents): enforcement runs in full on every request.
  "$GW_BIN" keygen --kind issuer --alg ES256 --out "$TMP/gw/issuer.pem" \
    --jwks-out "$TMP/gw/issuer.jwks.json" >/dev/null || die "anchorgate keygen --kind issuer failed"
  LOAD_AUD="https://load.anchorgate.test/fhir"
  IDENTITY_TOML=$(printf '[identity]\naudience = "%s"\npartners_file = "%s"\n[[identity.issuers]]\nissuer = "https://issuer.load.test"\njwks_file = "%s"\n[policy]\ndefault_policy = "permit"\n' \
    "$LOAD_AUD" "$REPO/policies/partners.toml" "$TMP/gw/issuer.jwks.json")
  LOAD_TOKEN=$("$GW_BIN" token --issuer-key "$TMP/gw/issuer.pem" --ttl 86400 --claims \
    "{\"iss\":\"https://issuer.load.test\",\"aud\":\"$LOAD_AUD\",\"sub\":\"load\",\"client_id\":\"load\",\"scope\":\"system/*.cruds\",\"extensions\":{\"hl7-b2b\":{\"organization_id\":\"Organization/org-h1\",\"purpose_of_use\":[\"TREAT\"]}}}") \
    || die "anchorgate token failed"
  export LOAD_TOKEN
  # LOAD_GW_EXTRA_TOML: more settings for the main gateway, for experiments (e.g. a ledger option).
  printf '%s\n%s\n' "$IDENTITY_TOML" "${LOAD_GW_EXTRA_TOML:-}" >"$TMP/gw/default.toml"
  # start_gateway PORT BASE NAME [CONFIG]: one gateway on the proxy core; sets STARTED_PID.
  start_gateway() {
    local port=$1 base=$2 name=$3 config=${4:-$TMP/gw/default.toml}
    # Each gateway signs its own ledger with a real key, made as an operator makes one.
    "$GW_BIN" keygen --origin "load.anchorgate/$name" --out "$TMP/gw/$name.key" >/dev/null \
      || die "anchorgate keygen failed"
    "${PIN_CMD[@]}" env ANCHORGATE_WORKER_THREADS="$WORKERS" ANCHORGATE_LOG="$GW_LOG" \
      ${config:+ANCHORGATE_CONFIG="$config"} \
      "$GW_BIN" serve --upstream "$UP_BASE" --listen "127.0.0.1:$port" \
      --ledger-key-file "$TMP/gw/$name.key" \
      --public-base "$base" --data-dir "$TMP/gw/data-$name" >"$TMP/gw/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_ready "http://127.0.0.1:$port/healthz" "${LOAD_GW_STARTUP_TIMEOUT:-30}" "$STARTED_PID" \
      "$TMP/gw/$name.log" "$name (target/release/anchorgate serve ...)"
    log "$name up (pid $STARTED_PID)"
  }
  start_gateway "$GW_PORT" "$GW_BASE" anchorgate
  GW_PID=$STARTED_PID
  TARGETS="$TARGETS anchorgate"
  if [[ " $CASES " == *" create "* ]]; then
    # The write path's validation cost: the same binary and placement with validation off.
    printf '[validation]\nmode = "off"\n%s\n' "$IDENTITY_TOML" >"$TMP/gw/noval.toml"
    start_gateway "$GW2_PORT" "$GW2_BASE" anchorgate-noval "$TMP/gw/noval.toml"
    GW2_PID=$STARTED_PID
    # The anchoring cost: validation off and the ledger off, the plain proxy on the write path.
    printf '[validation]\nmode = "off"\n[ledger]\nenabled = false\n%s\n' "$IDENTITY_TOML" >"$TMP/gw/noanchor.toml"
    start_gateway "$GW3_PORT" "$GW3_BASE" anchorgate-noanchor "$TMP/gw/noanchor.toml"
    GW3_PID=$STARTED_PID
  fi
fi

# The targets timed for one case: the validation-off gateway only where validation happens.
targets_for() {
  if [ "$1" = create ] && [ -n "$GW2_PID" ]; then echo "$TARGETS anchorgate-noval anchorgate-noanchor"; else echo "$TARGETS"; fi
}

base_of() {
  case $1 in
    direct) echo "$UP_BASE" ;;
    nginx) echo "$PEER_BASE" ;;
    floor) echo "$FLOOR_BASE" ;;
    bound) echo "$BOUND_BASE" ;;
    anchorgate) echo "$GW_BASE" ;;
    anchorgate-noval) echo "$GW2_BASE" ;;
    anchorgate-noanchor) echo "$GW3_BASE" ;;
  esac
}
proxy_pids_of() {
  case $1 in
    direct) echo "" ;;
    nginx) nginx_pids "$PEER_PID" ;;
    floor) echo "$FLOOR_PID" ;;
    bound) echo "$BOUND_PID" ;;
    anchorgate) echo "$GW_PID" ;;
    anchorgate-noval) echo "$GW2_PID" ;;
    anchorgate-noanchor) echo "$GW3_PID" ;;
  esac
}

# ---------------------------------------------------------- correctness first
log "sanity checks"
WITH_CREATE=""
[[ " $CASES " == *" create "* ]] && WITH_CREATE=--with-create
for t in $TARGETS; do
  if [ "$t" = anchorgate ]; then
    if ! python3 "$HERE/harness.py" check --name "$t" --base "$(base_of "$t")" \
         --upstream-base "$UP_BASE" --canned "$TMP/canned" --expect-rewrite $WITH_CREATE; then
      if [ "$ALLOW_LEAK" = 1 ]; then
        log "WARNING: anchorgate failed its correctness check (LOAD_ALLOW_LEAK=1: continuing)"
        GW_NOTE="correctness check FAILED (upstream base leaked or wrong response); timed anyway with LOAD_ALLOW_LEAK=1"
      else
        die "anchorgate failed its correctness check (see above); LOAD_ALLOW_LEAK=1 to time it anyway"
      fi
    fi
  else
    python3 "$HERE/harness.py" check --name "$t" --base "$(base_of "$t")" \
      --upstream-base "$UP_BASE" --canned "$TMP/canned" $WITH_CREATE \
      || die "$t failed its sanity check"
  fi
done

if [ -n "$GW2_PID" ]; then
  python3 "$HERE/harness.py" check --name anchorgate-noval --base "$GW2_BASE" \
    --upstream-base "$UP_BASE" --canned "$TMP/canned" --expect-rewrite $WITH_CREATE \
    || die "anchorgate with validation off failed its correctness check"
  python3 "$HERE/harness.py" check --name anchorgate-noanchor --base "$GW3_BASE" \
    --upstream-base "$UP_BASE" --canned "$TMP/canned" --expect-rewrite $WITH_CREATE \
    || die "anchorgate with validation and the ledger off failed its correctness check"
fi

IDLE_PEER_KB=$(mem_kb VmRSS $(nginx_pids "$PEER_PID"))
IDLE_UP_KB=$(mem_kb VmRSS $(nginx_pids "$UP_PID"))
IDLE_GW_KB=0
[ -n "$GW_PID" ] && IDLE_GW_KB=$(mem_kb VmRSS "$GW_PID")

# ---------------------------------------------------------- quiet machine?
# Everything we started is idle now, so any CPU use is someone else's.
BUSY_BEFORE=$(python3 "$HERE/harness.py" busy 1)
waited=0
while [ "$BUSY_BEFORE" -gt "$MAX_BUSY" ] && [ "$waited" -lt "$WAIT_IDLE" ]; do
  log "machine ${BUSY_BEFORE}% busy (> LOAD_MAX_BUSY=$MAX_BUSY); waiting for it to calm down (${waited}/${WAIT_IDLE}s)"
  sleep 4; waited=$((waited + 5))
  BUSY_BEFORE=$(python3 "$HERE/harness.py" busy 1)
done
[ "$BUSY_BEFORE" -gt "$MAX_BUSY" ] \
  && log "WARNING: machine is ${BUSY_BEFORE}% busy before timing: other work competes for the CPUs, results will be noisy"
LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------- timing
url_of() { # target case
  local b; b=$(base_of "$1")
  case $2 in
    read) echo "$b/Patient/$PID_" ;;
    search) echo "$b/$CANNED_SEARCH_TYPE?$CANNED_SEARCH_QUERY" ;;
    create) echo "$b/Patient" ;;
    *) die "unknown case $2 (LOAD_CASES: read search create)" ;;
  esac
}

# wrk_run target case conns duration [record]
wrk_run() {
  local target=$1 case=$2 conns=$3 dur=$4 record=${5:-}
  local threads=$WRK_THREADS out="$TMP/wrk-$target-$case-$conns.txt" method=GET body=""
  [ "$threads" -gt "$conns" ] && threads=$conns
  if [ "$case" = create ]; then method=POST; body=$TMP/canned/patient-create.json; fi
  local pids t0 t1 secs
  pids=$(proxy_pids_of "$target")
  secs=$(dur_secs "$dur")
  local cmd=(timeout $((secs + 30)) env LOAD_METHOD="$method" LOAD_BODY_FILE="$body")
  pin_prefix "$CPU_WRK"
  cmd+=("${PIN_CMD[@]}" wrk -t"$threads" -c"$conns" -d"$dur" --timeout 5s -s "$HERE/stats.lua" "$(url_of "$target" "$case")")
  local up_pids s0 u0 c0 t0 s1 u1 c1 t1
  up_pids=$(nginx_pids "$UP_PID")
  s0=$(sys_ticks); u0=$(cpu_ticks $up_pids); t0=$(cpu_ticks $pids)
  child_ticks; c0=$CHILD_TICKS
  # in the background + wait, so that a signal interrupts the run at once (see cleanup)
  "${cmd[@]}" >"$out" 2>&1 &
  WRK_PID=$!
  if ! wait "$WRK_PID"; then
    WRK_PID=""
    cat "$out" >&2
    die "wrk failed for $target/$case/c=$conns"
  fi
  WRK_PID=""
  child_ticks; c1=$CHILD_TICKS
  t1=$(cpu_ticks $pids); u1=$(cpu_ticks $up_pids); s1=$(sys_ticks)
  [ -n "$record" ] || return 0
  local cpu_arg=()
  [ -n "$pids" ] && cpu_arg=(--cpu-ticks $((t1 - t0)))
  # CPU used by anything that is not wrk, the upstream or the proxy under test
  local other=$(( (s1 - s0) - (t1 - t0) - (u1 - u0) - (c1 - c0) ))
  python3 "$HERE/harness.py" record --target "$target" --case "$case" --conns "$conns" --round "$round" \
    "${cpu_arg[@]}" --other-ticks "$other" --upstream-ticks $((u1 - u0)) \
    --wrk-ticks $((c1 - c0)) --wrk-output "$out" >>"$CELL"
  python3 - "$CELL" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
errs = sum(r[k] for k in r if k.startswith("err_"))
cpu = f" cpu={r['proxy_cpu_us_per_req']}us/req util={r['proxy_cpu_util']}" if "proxy_cpu_s" in r else ""
cpu += f" other={r['other_cpu']}"
print(f"    {r['target']:10s} {r['case']:6s} c={r['conns']:<3d} rps={r['rps']:>9.0f} "
      f"p50={r['p50_us']}us p99={r['p99_us']}us errors={errs}{cpu}", file=sys.stderr)
PY
}

for round in $(seq 1 "$ROUNDS"); do
for case in $CASES; do
  log "round $round/$ROUNDS, case $case: warm-up ${WARMUP} per target"
  for t in $(targets_for "$case"); do wrk_run "$t" "$case" 16 "$WARMUP"; done
  for c in $CONNS; do
    # One cell = all targets at one (case, concurrency), interleaved so slow drift on the
    # machine hits all of them alike. Repeated (bounded) if other work used the CPUs meanwhile.
    attempt=1 best="" best_noise=""
    while :; do
      log "case $case, $c connection(s), ${DURATION} per target (attempt $attempt)"
      CELL=$TMP/cell-$round-$case-$c-$attempt.jsonl; : >"$CELL"
      for t in $(targets_for "$case"); do
        wrk_run "$t" "$case" "$c" "$DURATION" record
        sleep 0.5
      done
      noise=$(python3 -c 'import json,sys
print(max(json.loads(l).get("other_cpu", 0) for l in open(sys.argv[1])))' "$CELL")
      # keep the least disturbed attempt
      if [ -z "$best" ] || awk -v n="$noise" -v b="$best_noise" 'BEGIN {exit !(n < b)}'; then
        best=$CELL best_noise=$noise
      fi
      awk -v n="$noise" -v m="$MAX_OTHER" 'BEGIN {exit !(n <= m)}' && break
      if [ "$attempt" -gt "$RETRIES" ]; then
        log "WARNING: other processes kept using CPU during this cell (least: $best_noise cores); keeping the least disturbed attempt (flagged)"
        break
      fi
      log "other processes used up to $noise cores (> LOAD_MAX_OTHER=$MAX_OTHER) during this cell: repeating it"
      attempt=$((attempt + 1))
      sleep 5
    done
    cat "$best" >>"$RESULTS"
  done
done
done

# ---------------------------------------------------------- memory
mem_line() { # target idle_kb pids...
  local t=$1 idle=$2; shift 2
  printf '{"kind":"mem","target":"%s","hwm_kb":%s,"idle_rss_kb":%s,"procs":%s}\n' \
    "$t" "$(mem_kb VmHWM "$@")" "$idle" "$#"
}
mem_line nginx "$IDLE_PEER_KB" $(nginx_pids "$PEER_PID") >>"$RESULTS"
mem_line upstream "$IDLE_UP_KB" $(nginx_pids "$UP_PID") >>"$RESULTS"
[ -n "$GW_PID" ] && mem_line anchorgate "$IDLE_GW_KB" "$GW_PID" >>"$RESULTS"
# How the ledger batched (mean entries per fsync), from the gateways' own metrics.
[ -n "$GW_PID" ] && python3 "$HERE/harness.py" ledger --target anchorgate \
  --metrics-url "http://127.0.0.1:$GW_PORT/metrics" >>"$RESULTS" || true
[ -n "$GW2_PID" ] && python3 "$HERE/harness.py" ledger --target anchorgate-noval \
  --metrics-url "http://127.0.0.1:$GW2_PORT/metrics" >>"$RESULTS" || true
is_alive "$PEER_PID" || die "nginx peer died during the run"
[ -z "$GW_PID" ] || is_alive "$GW_PID" || die "anchorgate died during the run (see $TMP/gw/anchorgate.log)"

BUSY_AFTER=$(python3 "$HERE/harness.py" busy 1)
MACHINE_NOTE="machine-wide CPU busy with the harness idle (1-s samples): ${BUSY_BEFORE}% before and ${BUSY_AFTER}% after timing; load average before: $LOADAVG_BEFORE."
if [ "$BUSY_BEFORE" -gt "$MAX_BUSY" ] || [ "$BUSY_AFTER" -gt "$MAX_BUSY" ]; then
  log "WARNING: machine was busy (${BUSY_BEFORE}% before / ${BUSY_AFTER}% after timing)"
fi

# ---------------------------------------------------------- report
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commits yet")
[ -n "$(git -C "$REPO" status --porcelain 2>/dev/null | head -1)" ] && GIT_REV="$GIT_REV (working tree dirty)"
if [ "$PIN" = 1 ]; then
  PIN_TEXT="- CPU pinning (\`taskset\`, $(nproc) CPUs): proxy under test (nginx peer **or** Anchorgate) on CPU $CPU_PROXY, static upstream nginx on CPU $CPU_UPSTREAM, wrk on CPU $CPU_WRK. Both proxies get the identical placement and the same single core, and the client and upstream cost the same for both, so the Anchorgate/nginx ratio compares the proxies alone. With the default layout (proxy alone on CPU 0, wrk + upstream sharing CPU 1) the proxy has a dedicated core: if its CPU utilisation stays below ~0.9 the bottleneck was the shared client/upstream core (or latency), not the proxy — then compare *CPU µs/req*. In the *direct* baseline the proxy core is idle and wrk + upstream keep their CPUs, so \"+p99\" includes the cost of the extra cross-core hops a proxy causes (visible in nginx's +p99 too)."
else
  PIN_TEXT="- No CPU pinning (LOAD_PIN=0 or fewer than 2 CPUs): all processes share all CPUs; treat the numbers as rough."
fi
METHOD=$(cat <<EOF
$PIN_TEXT
- Worker budget: nginx peer \`worker_processes $WORKERS\`; Anchorgate \`ANCHORGATE_WORKER_THREADS=$WORKERS\` (release build, \`ANCHORGATE_LOG=$GW_LOG\`, i.e. no per-request log lines, like nginx's \`access_log off\`). Static upstream nginx: 1 worker, \`sendfile on\`, \`tcp_nopush off\` (with TCP_CORK the tail of the 88 KB Bundle stalled on the proxies' pooled connections: ~40 ms p99 spikes through both proxies), \`open_file_cache\`.
- nginx peer: \`proxy_pass\` to an \`upstream { keepalive 64; }\` block, \`proxy_http_version 1.1\`, \`proxy_set_header Connection ""\`, \`access_log off\`, memory-only proxy buffers (256 KiB; the Bundle never spills to disk), \`keepalive_requests 1000000\` on both sides (the default 1000 would force reconnects).
- Load: \`wrk -t$WRK_THREADS\` (capped at the connection count) with keep-alive connections at $(echo $CONNS | sed 's/ /, /g') connections, ${DURATION} per run after a ${WARMUP} warm-up per target and case; header \`Accept: application/fhir+json\`. Targets are interleaved per (case, concurrency) cell; a cell during which other processes used more than $MAX_OTHER cores is repeated (at most $RETRIES times) and the least disturbed attempt is kept. $ROUNDS round(s) of the whole matrix; with several rounds each row is the round with the median rps for that target and cell. Latency percentiles come from wrk's histogram (closed-loop client, so queueing delay under saturation is under-reported).
- Canned responses (generated at run time by \`tests/load/gen_canned.py\` from the Synthea export in \`${DATA#"$REPO"/}\`): Patient \`$PID_\` ($CANNED_SIZE_PATIENT bytes); searchset Bundle of 50 of that patient's $CANNED_SEARCH_TOTAL Encounters ($CANNED_SIZE_SEARCH50 bytes) whose \`link\` self/next and every \`entry.fullUrl\` are absolute on the upstream base \`http://127.0.0.1:<upstream port>/fhir\`; all served as \`application/fhir+json;charset=utf-8\`.
- Correctness gate before timing: every target must return the Patient and the 50-entry Bundle; Anchorgate's Bundle must contain its own public base and must not contain the upstream's host:port.
EOF
)
NOTES=$(cat <<EOF
- nginx does **not** rewrite URLs inside response bodies: through the nginx peer the Bundle still points at the upstream's base. It is the *floor* for a reverse proxy (pure byte forwarding). Anchorgate must parse the Bundle and rewrite the self/next links and 50 \`fullUrl\`s, so the search case is where its extra work shows.
- Peak RSS for nginx is the sum of the master's and workers' VmHWM (each process's own peak), an upper bound of the simultaneous peak.
- Single runs on a shared 2-core machine are noisy (expect ±5–10 % run to run); compare ratios within one run rather than absolute numbers across runs.
EOF
)
python3 "$HERE/harness.py" report --results "$RESULTS" --out "$OUT_MD" --git-rev "$GIT_REV" \
  --method "$METHOD" --notes "$NOTES" --gateway-note "$GW_NOTE" --gateway-bin "${GW_PID:+$GW_BIN}" --machine-note "$MACHINE_NOTE" --max-other "$MAX_OTHER" --moderate-conns "$MODERATE_CONNS"
[ "$KEEP_TMP" = 1 ] && log "raw files in $TMP"
log "done"
