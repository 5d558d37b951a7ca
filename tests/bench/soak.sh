#!/usr/bin/env bash
# scripts/bench --soak [MINUTES]: mixed load against one broker for MINUTES (10) while
# faults are injected, then errors beyond those the faults explain, p99 per 10 s window,
# and the broker's RSS and open fds every 10 s with their slope after a minute of
# warm-up (issue 17, item 4). Release build, its own PKI, everything on 127.0.0.1, all
# stopped on exit. Reports numbers; decides nothing. tests/bench/README.md, "Soak".
#
# Load (tests/bench/soak_load.cc, open loop, ~215 calls/s at BENCH_SOAK_SCALE=1):
# exchanges from the bank (consent) and the registry (mandate), grants each followed by
# its revoke (and a ListConsents), PublishChange with delivery to the tax office's
# connector, transparency reads (access history, checkpoint, inclusion proofs).
#
# Faults, in a 5-minute cycle from the start of the load (times in s within the cycle):
#    30  90 150 210 270  directory reload: the file rewritten (an extra agency and
#                        purpose come and go), SIGHUP; at 270, when a good reload follows
#                        before the end, first a half-written file (refused, kept)
#    75  bank connector killed (SIGKILL) and restarted on the same port
#   135  bank connector SIGSTOPped, SIGCONT at 155
#   195  certificate rotation: new broker and bank certificates and keys from the same
#        CA, written in place, SIGHUP to both
#   255  bank connector stopped (SIGTERM) and restarted on another port, the directory
#        moved to it, SIGHUP
# Failures of bank exchanges with UNAVAILABLE, DEADLINE_EXCEEDED or a provider result
# from a bank fault's start until BENCH_SOAK_GRACE (15) s after it ended are expected;
# every other failure is not (tests/bench/soak_report.py).
#
# Environment: BENCH_BUILD_DIR (build-release), BENCH_JOBS (2), BENCH_KEEP=1 keeps the
# work directory (every process's log, soak.out, faults, metrics), BENCH_SOAK_SCALE
# (1: multiplies every rate), BENCH_SOAK_GRACE (15), BENCH_SOAK_WRITE_BUFFER_MB (32: the
# broker's storage.rocksdb.write_buffer_mb, small so that RSS levels off within minutes
# and growth beyond it is a leak), BENCH_BROKER_CONFIG (BrokerConfig
# text added to the broker's), BENCH_SOAK_HEAP_PROFILE=1 (the broker under jemalloc's heap
# profiler, a profile every 2^BENCH_SOAK_HEAP_INTERVAL (28) bytes allocated; at the end,
# what grew between the first profile after the warm-up and the last, by allocation
# site, from jeprof).
#
# The last line is
#   summary: minutes=M calls=N unexpected_errors=U expected_errors=E undelivered=N
#            rss_mb_first=.. rss_mb_last=.. rss_slope_mb_per_min=.. fds_first=..
#            fds_last=.. fds_slope_per_min=.. rss_less_wal_slope_mb_per_min=..
#            p99_ms_median=.. p99_ms_max=..
# (wal: the bytes in the broker's RocksDB write-ahead log files, which its memtables hold
# in memory until a flush; RSS less WAL is what the broker holds besides them.)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
MINUTES="${1:-10}"
[[ "$MINUTES" =~ ^[1-9][0-9]{0,3}$ ]] ||
  { echo "usage: scripts/bench --soak [MINUTES]" >&2; exit 2; }
SECONDS_TOTAL=$((MINUTES * 60))
GRACE="${BENCH_SOAK_GRACE:-15}"
BANK_CITIZENS=20000
REGISTRY_CITIZENS=1000

BUILD_DIR="${BENCH_BUILD_DIR:-build-release}"
BIN="$ROOT/$BUILD_DIR"
BUILD_LOG="$(mktemp -t tellonce-soak-build-XXXXXX.log)"
if ! { cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release &&
  cmake --build "$BUILD_DIR" -j"${BENCH_JOBS:-2}" --target tellonce-broker tellonce-bank \
    tellonce-registry preload_consents soak_load; } >"$BUILD_LOG" 2>&1; then
  tail -40 "$BUILD_LOG" >&2
  echo "soak: release build failed (log: $BUILD_LOG)" >&2
  exit 1
fi
rm -f "$BUILD_LOG"

WORK="$(mktemp -d -t tellonce-soak-XXXXXX)"
PKI="$WORK/pki"
BROKER_PID="" BANK_PID="" REGISTRY_PID="" LOAD_PID=""
stop() {  # stop PID: SIGCONT (it may be stopped), SIGTERM, wait
  local pid="$1"
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
cleanup() {
  stop "$LOAD_PID"
  stop "$BANK_PID"
  stop "$REGISTRY_PID"
  stop "$BROKER_PID"
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
log() { echo "soak: $*" >&2; }
die() { log "$*"; exit 1; }
now_ms() { date +%s%3N; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {  # wait_port PID FILE NAME: the port the process wrote
  local pid="$1" file="$2" name="$3"
  for _ in $(seq 1 600); do
    [[ -s "$file" ]] && { cat "$file"; return; }
    kill -0 "$pid" 2>/dev/null ||
      { tail -20 "$WORK/$name.log" >&2; die "$name exited at start-up"; }
    sleep 0.1
  done
  die "$name did not start"
}

echo "machine: $(nproc) cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo))," \
  "$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"

# --- PKI, data, connectors ------------------------------------------------------------
cp deploy/local/directory.textproto "$WORK/directory.textproto"
certs/make-dev-pki --out "$PKI" --directory "$WORK/directory.textproto" >/dev/null
"$BIN/tests/bench/preload_consents" --data-dir "$WORK/data" --consents "$BANK_CITIZENS" \
  --bank-records "$WORK/bank-records.textproto" --bank-citizens "$BANK_CITIZENS" \
  >"$WORK/preload.log" 2>&1 || { cat "$WORK/preload.log" >&2; die "preload failed"; }
"$BIN/tests/bench/soak_load" --write-registry-records "$WORK/registry-records.textproto" \
  --registry-citizens "$REGISTRY_CITIZENS"

connector_config() {  # connector_config AGENCY PORT
  printf '%s\n' "agency_id: \"$1\"" "listen_address: \"127.0.0.1:$2\"" \
    'trust_domain: "tellonce.local"' \
    "tls { ca_file: \"pki/ca.pem\" cert_file: \"pki/agencies/$1.pem\"" \
    "      key_file: \"pki/agencies/$1.key\" }" \
    "data_file: \"$1-records.textproto\"" >"$WORK/$1.textproto"
}
start_registry() {
  connector_config registry 0
  "$BIN/connectors/tellonce-registry" --config "$WORK/registry.textproto" \
    --port-file "$WORK/registry.port" 2>>"$WORK/registry.log" &
  REGISTRY_PID=$!
  REGISTRY_PORT="$(wait_port "$REGISTRY_PID" "$WORK/registry.port" registry)"
}
start_bank() {  # start_bank PORT
  BANK_PORT="$1"
  connector_config bank "$BANK_PORT"
  rm -f "$WORK/bank.port"
  "$BIN/connectors/tellonce-bank" --config "$WORK/bank.textproto" \
    --port-file "$WORK/bank.port" 2>>"$WORK/bank.log" &
  BANK_PID=$!
  wait_port "$BANK_PID" "$WORK/bank.port" bank >/dev/null
}
start_registry
start_bank "$(free_port)"
SUBSCRIBER_PORT="$(free_port)"

# --- The directory, rewritten at every reload -------------------------------------------
GENERATION=0
# write_directory [bad]: the next generation, replaced atomically; "bad" writes half of
# it in place instead (what a careless copy leaves), which the broker must refuse.
write_directory() {
  GENERATION=$((GENERATION + 1))
  local next="$WORK/directory.next"
  sed -e "s/127.0.0.1:7501/127.0.0.1:$REGISTRY_PORT/" -e "s/127.0.0.1:7502/127.0.0.1:$BANK_PORT/" \
    -e "s/127.0.0.1:7503/127.0.0.1:$SUBSCRIBER_PORT/" deploy/local/directory.textproto >"$next"
  cat >>"$next" <<EOF

# --- Added by scripts/bench --soak, generation $GENERATION ---
mandates { id: "soak-tax-address" consumer: "tax" attributes: "person.address"
           purpose: "TAX_ASSESSMENT" legal_reference: "Soak Act s. 1 (example)" }
mandates { id: "soak-benefits-name" consumer: "benefits" attributes: "person.name"
           purpose: "TAX_ASSESSMENT" legal_reference: "Soak Act s. 2 (example)" }
purposes { code: "SOAK_RELOAD" description: "Directory generation $GENERATION" }
EOF
  if ((GENERATION % 2 == 1)); then
    cat >>"$next" <<EOF
agencies { id: "soak-extra" name: "Soak extra agency (generation $GENERATION)" roles: CONSUMER }
mandates { id: "soak-extra-name" consumer: "soak-extra" attributes: "person.name"
           purpose: "SOAK_RELOAD" legal_reference: "Soak Act s. 3 (example)" }
EOF
  fi
  if [[ "${1:-}" == bad ]]; then
    head -c "$(($(stat -c %s "$next") / 2))" "$next" >"$WORK/directory.textproto"
    rm -f "$next"
  else
    mv -f "$next" "$WORK/directory.textproto"
  fi
}
write_directory

# --- The broker -----------------------------------------------------------------------
cat >"$WORK/broker.textproto" <<EOF
listen_address: "127.0.0.1:0"
tls { ca_file: "pki/ca.pem" cert_file: "pki/broker.pem" key_file: "pki/broker.key" }
signing { key_file: "pki/signing/broker-signing.key" key_id: "dev-1" }
storage { rocksdb { path: "data" write_buffer_mb: ${BENCH_SOAK_WRITE_BUFFER_MB:-32} } }
directory_file: "directory.textproto"
admin { listen_address: "127.0.0.1:0" }
shutdown_grace_seconds: 2
${BENCH_BROKER_CONFIG:-}
EOF
MALLOC_CONF_BROKER=""
if [[ "${BENCH_SOAK_HEAP_PROFILE:-0}" == 1 ]]; then
  mkdir -p "$WORK/heap"
  MALLOC_CONF_BROKER="prof:true,prof_active:true,lg_prof_sample:17"
  MALLOC_CONF_BROKER+=",lg_prof_interval:${BENCH_SOAK_HEAP_INTERVAL:-28}"
  MALLOC_CONF_BROKER+=",prof_prefix:$WORK/heap/jeprof"
fi
MALLOC_CONF="$MALLOC_CONF_BROKER" "$BIN/broker/tellonce-broker" --config "$WORK/broker.textproto" \
  --port-file "$WORK/broker.port" --admin-port-file "$WORK/admin.port" 2>>"$WORK/broker.log" &
BROKER_PID=$!
BROKER_PORT="$(wait_port "$BROKER_PID" "$WORK/broker.port" broker)"
ADMIN_PORT="$(cat "$WORK/admin.port")"

# --- Faults -----------------------------------------------------------------------------
: >"$WORK/faults"
fault() {  # fault KIND START_MS END_MS [DETAIL]
  echo "fault kind=$1 start_ms=$2 end_ms=$3 detail=${4:-}" >>"$WORK/faults"
  log "t=$(((${2} - T0_MS) / 1000))s $1 ${4:-}"
}
reload() {  # reload [bad]
  local start
  start="$(now_ms)"
  write_directory "${1:-}"
  kill -HUP "$BROKER_PID"
  fault "reload${1:+-$1}" "$start" "$(now_ms)" "generation $GENERATION"
}
restart_kill() {
  local start
  start="$(now_ms)"
  kill -KILL "$BANK_PID"
  wait "$BANK_PID" 2>/dev/null || true
  start_bank "$BANK_PORT"
  fault restart "$start" "$(now_ms)" "SIGKILL, same port $BANK_PORT"
}
restart_move() {
  local start port
  start="$(now_ms)"
  port="$(free_port)"
  stop "$BANK_PID"
  start_bank "$port"
  write_directory
  kill -HUP "$BROKER_PID"
  fault move "$start" "$(now_ms)" "SIGTERM, new port $port, directory generation $GENERATION"
}
STOP_MS=""
pause_bank() { STOP_MS="$(now_ms)"; kill -STOP "$BANK_PID"; }
resume_bank() { kill -CONT "$BANK_PID"; fault stop "$STOP_MS" "$(now_ms)" "SIGSTOP for 20 s"; }
# issue_leaf NAME SPIFFE_ID CERT KEY: a new key and certificate from the CA, as
# certs/make-dev-pki issues them, each replaced atomically (key first).
issue_leaf() {
  local name="$1" id="$2" cert="$3" key="$4" tmp="$WORK/rotate-$1"
  printf '%s\n' 'basicConstraints = critical, CA:FALSE' 'keyUsage = critical, digitalSignature' \
    'extendedKeyUsage = serverAuth, clientAuth' 'subjectKeyIdentifier = hash' \
    'authorityKeyIdentifier = keyid, issuer' \
    "subjectAltName = URI:$id, DNS:localhost, IP:127.0.0.1" >"$tmp.ext"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -pkeyopt ec_param_enc:named_curve -out "$tmp.key" 2>/dev/null
  chmod 600 "$tmp.key"
  openssl req -new -key "$tmp.key" -subj "/O=tellonce development/CN=$name (rotated)" \
    -out "$tmp.csr" 2>/dev/null
  openssl x509 -req -in "$tmp.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -sha256 -days 30 -extfile "$tmp.ext" \
    -out "$tmp.pem" 2>/dev/null
  mv -f "$tmp.key" "$key"
  mv -f "$tmp.pem" "$cert"
  rm -f "$tmp.csr" "$tmp.ext"
}
# served_fingerprint PORT CERT KEY: the SHA-256 fingerprint of the certificate the server
# on PORT presents (connecting with CERT/KEY).
served_fingerprint() {
  openssl s_client -connect "127.0.0.1:$1" -cert "$2" -key "$3" -CAfile "$PKI/ca.pem" \
    </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}
file_fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
ROTATIONS_VERIFIED=0
ROTATIONS=0
rotate() {
  local start
  start="$(now_ms)"
  issue_leaf broker spiffe://tellonce.local/broker "$PKI/broker.pem" "$PKI/broker.key"
  issue_leaf bank spiffe://tellonce.local/agency/bank "$PKI/agencies/bank.pem" \
    "$PKI/agencies/bank.key"
  kill -HUP "$BROKER_PID"
  kill -HUP "$BANK_PID"
  sleep 1
  local ok=0
  [[ "$(served_fingerprint "$BROKER_PORT" "$PKI/agencies/ops.pem" "$PKI/agencies/ops.key")" == \
    "$(file_fingerprint "$PKI/broker.pem")" ]] && ok=$((ok + 1))
  [[ "$(served_fingerprint "$BANK_PORT" "$PKI/broker.pem" "$PKI/broker.key")" == \
    "$(file_fingerprint "$PKI/agencies/bank.pem")" ]] && ok=$((ok + 1))
  ROTATIONS=$((ROTATIONS + 1))
  ((ok == 2)) && ROTATIONS_VERIFIED=$((ROTATIONS_VERIFIED + 1))
  fault rotate "$start" "$(now_ms)" "broker and bank; $ok of 2 now serve the new certificate"
}

# The schedule: "SECOND ACTION" lines, sorted by time.
schedule() {
  local o
  for ((o = 0; o < SECONDS_TOTAL; o += 300)); do
    local t
    for t in 30 90 150 210; do echo "$((o + t)) reload"; done
    if ((o + 270 + 60 < SECONDS_TOTAL - 10)); then echo "$((o + 270)) reload-bad"
    else echo "$((o + 270)) reload"; fi
    echo "$((o + 75)) restart"
    echo "$((o + 135)) pause"
    echo "$((o + 155)) resume"
    echo "$((o + 195)) rotate"
    echo "$((o + 255)) move"
  done | awk -v end="$SECONDS_TOTAL" '$1 < end - 10' | sort -n
}

log "broker on $BROKER_PORT (admin $ADMIN_PORT), bank on $BANK_PORT, registry on" \
  "$REGISTRY_PORT, tax's connector (in soak_load) on $SUBSCRIBER_PORT; $MINUTES min"
"$BIN/tests/bench/soak_load" --broker "127.0.0.1:$BROKER_PORT" --pki "$PKI" \
  --broker-pid "$BROKER_PID" --subscriber-port "$SUBSCRIBER_PORT" --seconds "$SECONDS_TOTAL" \
  --scale "${BENCH_SOAK_SCALE:-1}" --bank-citizens "$BANK_CITIZENS" \
  --registry-citizens "$REGISTRY_CITIZENS" --data-dir "$WORK/data" \
  >"$WORK/soak.out" 2>"$WORK/soak.err" &
LOAD_PID=$!
T0_MS="$(now_ms)"
while read -r at action; do
  while (($(now_ms) < T0_MS + at * 1000)); do
    kill -0 "$LOAD_PID" 2>/dev/null || { cat "$WORK/soak.err" >&2; die "soak_load exited early"; }
    kill -0 "$BROKER_PID" 2>/dev/null || { tail -20 "$WORK/broker.log" >&2; die "the broker died"; }
    sleep 0.2
  done
  case "$action" in
    reload) reload ;;
    reload-bad) reload bad ;;
    restart) restart_kill ;;
    pause) pause_bank ;;
    resume) resume_bank ;;
    rotate) rotate ;;
    move) restart_move ;;
  esac
done < <(schedule)
wait "$LOAD_PID" || { cat "$WORK/soak.err" >&2; die "soak_load failed"; }
LOAD_PID=""
kill -0 "$BROKER_PID" 2>/dev/null || { tail -20 "$WORK/broker.log" >&2; die "the broker died"; }

# What the broker counted, from its admin listener, before it stops.
python3 -c 'import sys, urllib.request
url = "http://127.0.0.1:%s/metrics" % sys.argv[1]
print(urllib.request.urlopen(url, timeout=10).read().decode())' \
  "$ADMIN_PORT" >"$WORK/metrics.txt" || log "could not read the broker's metrics"
BROKER_EXIT=0
kill -TERM "$BROKER_PID"
wait "$BROKER_PID" || BROKER_EXIT=$?
BROKER_PID=""
{
  echo "rotations=$ROTATIONS rotations_verified=$ROTATIONS_VERIFIED broker_exit=$BROKER_EXIT"
  echo "broker_log_errors=$(grep -c ' ERROR ' "$WORK/broker.log" || true)" \
    "broker_log_warnings=$(grep -c ' WARN ' "$WORK/broker.log" || true)"
} >"$WORK/extra"

echo
echo "== soak: $MINUTES min of mixed load with faults" \
  "(broker log: $(grep -c '' "$WORK/broker.log") lines)"
echo "-- broker log, ERROR and WARN lines by message (counts):"
grep -E ' (ERROR|WARN) ' "$WORK/broker.log" |
  sed -E 's/^[^ ]+ (ERROR|WARN) tellonce-broker: /\1 /; s/ [a-z_]+=.*//' | sort | uniq -c |
  sort -rn | head -20 || true
if [[ "${BENCH_SOAK_HEAP_PROFILE:-0}" == 1 ]]; then
  # Profiles in the order written; the base is the first written after the warm-up.
  mapfile -t PROFILES < <(ls -tr "$WORK"/heap/*.heap 2>/dev/null)
  BASE=""
  for f in "${PROFILES[@]}"; do
    if (($(stat -c %Y "$f") * 1000 >= T0_MS + 60000)); then BASE="$f"; break; fi
  done
  if [[ -n "$BASE" && "$BASE" != "${PROFILES[-1]}" ]]; then
    # Cumulative (callers included): jemalloc's own frames are symbolized as
    # malloc_usable_size, so the flat view says nothing; what matters is which callers
    # hold the growth (rocksdb::MemTable::Add: memtables; LRUCacheShard::Insert: the
    # block cache; tellonce:: and grpc frames: everything else).
    echo "-- heap growth by allocation site, cumulative (jeprof --cum --inuse_space," \
      "$(basename "${PROFILES[-1]}") less $(basename "$BASE"), ${#PROFILES[@]} profiles):"
    jeprof --text --cum --inuse_space --base="$BASE" "$BIN/broker/tellonce-broker" \
      "${PROFILES[-1]}" 2>/dev/null | grep -v '^Using local file' |
      grep -E '^Total|MemTable::Add|LRUCacheShard::Insert|tellonce::|grpc|ssl|SSL|absl::' |
      head -40 || true
  else
    log "heap profile: fewer than two profiles after the warm-up (${#PROFILES[@]} in all)"
  fi
fi
python3 tests/bench/soak_report.py --load "$WORK/soak.out" --faults "$WORK/faults" \
  --metrics "$WORK/metrics.txt" --extra "$WORK/extra" --grace "$GRACE" --warmup 60 \
  --seconds "$SECONDS_TOTAL"
