#!/usr/bin/env bash
# scripts/bench --flood: the flood probes of issue 13 against a broker with its default
# transport limits, each on a fresh broker, with the broker's RSS and another agency's
# calls measured (tests/bench/flood_load.cc). Reports numbers; decides nothing.
#
# Environment: BENCH_BUILD_DIR (build-release; any build directory of this tree will
# do), BENCH_JOBS (2), BENCH_KEEP=1 keeps the work directory, BENCH_BROKER_CONFIG
# (text-format BrokerConfig fields added to every broker, e.g. to compare limits:
# 'transport { max_concurrent_streams: 10000 resource_quota_mb: 65536 }'),
# FLOOD_MODES (all: rapid-reset outsider idle-streams connections oversized handshake).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR="${BENCH_BUILD_DIR:-build-release}"
BIN="$(pwd)/$BUILD_DIR"
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD_DIR" -j"${BENCH_JOBS:-2}" --target tellonce-broker tellonce-registry \
  flood_load >/dev/null

WORK="$(mktemp -d -t tellonce-flood-XXXXXX)"
STARTED=()
stop() {
  if kill -0 "$1" 2>/dev/null; then kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi
}
cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do stop "$pid"; done
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
die() { echo "flood: $*" >&2; exit 1; }
wait_port() {
  local pid="$1" file="$2"
  for _ in $(seq 1 600); do
    [[ -s "$file" ]] && { cat "$file"; return; }
    kill -0 "$pid" 2>/dev/null || die "process $pid exited at start-up (logs in $WORK)"
    sleep 0.1
  done
  die "no port in $file"
}

cp deploy/local/directory.textproto "$WORK/directory.textproto"
# "outsider": a certificate of the federation CA for an agency not in the directory.
certs/make-dev-pki --out "$WORK/pki" --directory "$WORK/directory.textproto" \
  --agency outsider >/dev/null
printf '%s\n' 'agency_id: "registry"' 'listen_address: "127.0.0.1:0"' \
  'trust_domain: "tellonce.local"' \
  'tls { ca_file: "pki/ca.pem" cert_file: "pki/agencies/registry.pem" key_file: "pki/agencies/registry.key" }' \
  "data_file: \"$(pwd)/deploy/local/connectors/registry-records.textproto\"" \
  >"$WORK/registry.textproto"
"$BIN/connectors/tellonce-registry" --config "$WORK/registry.textproto" \
  --port-file "$WORK/registry.port" 2>"$WORK/registry.log" &
REGISTRY_PID=$!
STARTED+=("$REGISTRY_PID")
REGISTRY_PORT="$(wait_port "$REGISTRY_PID" "$WORK/registry.port")"
sed -i "s/127.0.0.1:7501/127.0.0.1:$REGISTRY_PORT/" "$WORK/directory.textproto"

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "broker config added: ${BENCH_BROKER_CONFIG:-(none: defaults)}"
run=0
flood() {  # flood MODE CERT [flood_load flags...]
  local mode="$1" cert="$2"
  shift 2
  run=$((run + 1))
  printf '%s\n' 'listen_address: "127.0.0.1:0"' \
    'tls { ca_file: "pki/ca.pem" cert_file: "pki/broker.pem" key_file: "pki/broker.key" }' \
    "data_dir: \"data-$run\"" 'directory_file: "directory.textproto"' \
    'shutdown_grace_seconds: 2' 'admin { listen_address: "off" }' \
    "${BENCH_BROKER_CONFIG:-}" >"$WORK/broker-$run.textproto"
  "$BIN/broker/tellonce-broker" --config "$WORK/broker-$run.textproto" \
    --port-file "$WORK/broker-$run.port" 2>"$WORK/broker-$run.log" &
  local pid=$!
  STARTED+=("$pid")
  local port
  port="$(wait_port "$pid" "$WORK/broker-$run.port")"
  sleep 1
  "$BIN/tests/bench/flood_load" --mode "$mode" --target "127.0.0.1:$port" \
    --ca "$WORK/pki/ca.pem" --cert "$WORK/pki/agencies/$cert.pem" \
    --key "$WORK/pki/agencies/$cert.key" --probe-cert "$WORK/pki/agencies/benefits.pem" \
    --probe-key "$WORK/pki/agencies/benefits.key" --broker-pid "$pid" "$@" |
    sed "s/^flood: /flood: as=$cert /"
  kill -0 "$pid" 2>/dev/null || echo "flood: the broker died during $mode (log: $WORK/broker-$run.log)"
  stop "$pid"
}

for mode in ${FLOOD_MODES:-rapid-reset outsider idle-streams connections oversized handshake}; do
  case "$mode" in
    rapid-reset) flood rapid-reset tax --count 100000 --seconds 5 --connections 8 ;;
    outsider) flood rapid-reset outsider --count 100000 --seconds 5 --connections 8 ;;
    idle-streams) flood idle-streams tax --count 20000 --connections 20 --seconds 5 ;;
    connections) flood connections tax --count 1000 --seconds 3 ;;
    oversized) flood oversized tax --count 8 --size $((32 << 20)) ;;
    handshake) flood handshake tax --count 100 ;;
    *) die "unknown mode $mode" ;;
  esac
done
