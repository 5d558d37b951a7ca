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
cat >"$WORK/registry.textproto" <<EOF
agency_id: "registry"
listen_address: "127.0.0.1:0"
trust_domain: "tellonce.local"
tls { ca_file: "pki/ca.pem" cert_file: "pki/agencies/registry.pem" key_file: "pki/agencies/registry.key" }
data_file: "$(pwd)/deploy/local/connectors/registry-records.textproto"
