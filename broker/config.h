#ifndef TELLONCE_BROKER_CONFIG_H_
#define TELLONCE_BROKER_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "broker/dispatch_options.h"
#include "broker/rate_limiter.h"
#include "certs/tls.h"
#include "certs/tls_watch.h"
#include "consent/consent_store.h"
#include "consent/validation.h"
#include "ops/log.h"

namespace tellonce::broker {

// Everything the broker needs to start, with defaults applied and paths absolute.
struct BrokerOptions {
  // host:port to listen on. Default "127.0.0.1:7443". Port 0 picks a free port.
  std::string listen_address = "127.0.0.1:7443";
  certs::TlsPaths tls;
  // The receipt and checkpoint signing key (PEM, EC P-256) and its key id. Required;
  // never the TLS key.
  std::string signing_key_file;
  std::string signing_key_id;
  // How often the TLS files are re-read and how early their expiry is warned about.
  // Defaults 5 s and 168 h (certs::TlsMaterialWatcher::Options).
  certs::TlsMaterialWatcher::Options tls_watch;
  // RocksDB data directory. Required.
  std::string data_dir;
  // storage { postgres { ... } }: several brokers over one PostgreSQL database instead
  // of RocksDB in data_dir (config.proto, PostgresStorageConfig). Empty conninfo: RocksDB.
  struct Postgres {
    std::string conninfo;
    int pool_size = 8;
    int commit_threads = 2;
    absl::Duration sequencer_lease = absl::Seconds(3);
    absl::Duration claim_lease = absl::Seconds(10);
    bool migrate_on_start = true;
    std::string replica_name;
  };
  Postgres postgres;
  // Text-format tellonce.v1.Directory. Required.
  std::string directory_file;
  // The copy of the latest signed checkpoint kept outside the database (the rollback
  // guard). Default "<data_dir>.checkpoint".
  std::string signed_checkpoint_file;
  // Where online backups go; empty (default): backups are refused.
  std::string backup_dir;
  // The broker refuses to start on a data directory whose access log is behind
  // signed_checkpoint_file unless this is set (--accept-log-rollback, never in the
  // configuration file); it then records the rollback. Default false.
  bool accept_log_rollback = false;
  // Private keys group or others may read are accepted. Default false (refused).
  bool allow_readable_private_keys = false;
  // Largest request accepted. Default 1 MiB.
  uint32_t max_receive_message_bytes = 1 << 20;
  // String length and page size limits. Defaults 256 and 500.
  consent::RequestLimits limits;
  // Active consents per (citizen, consumer). Default 100.
  consent::ConsentStoreOptions consent_store;
  // Time SIGTERM gives in-flight calls to finish. Default 10 s.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // RocksDB block cache. Default 64 MiB.
  size_t block_cache_mb = 64;
  // GetAttributes deadline when the caller sets none. Default 5 s.
  absl::Duration exchange_default_deadline = absl::Seconds(5);
  // Largest attribute value accepted from a connector, bytes. Default 4096.
  uint32_t exchange_max_value_bytes = 4096;
  // Most attributes in one GetAttributes request. Default 32.
  uint32_t exchange_max_attributes = 32;
  // Batching of fetches per connector (ConnectorPool::Options). Defaults 64 and 2.
  uint32_t max_fetches_per_batch = 64;
  uint32_t connector_batches_in_flight = 2;
  // GetAttributes calls in progress at once (ExchangeOptions::max_in_flight).
  uint32_t exchange_max_in_flight = 2048;
  // Per consumer (ExchangeOptions::max_in_flight_per_consumer). Default 512.
  uint32_t exchange_max_in_flight_per_consumer = 512;
  // Cap on caller deadlines (ExchangeOptions::max_deadline). Default 30 s.
  absl::Duration exchange_max_deadline = absl::Seconds(30);
  // Fetches outstanding per provider (ConnectorPool::Options). Default 512.
  uint32_t max_fetches_per_provider = 512;
  // Circuit breaker per provider (ConnectorPool::Options). Defaults 5 failures in a row,
  // 5 s cool-down, timeouts counted from 500 ms.
  uint32_t breaker_failure_threshold = 5;
  absl::Duration breaker_cool_down = absl::Seconds(5);
  absl::Duration breaker_min_timeout = absl::Milliseconds(500);
  // Limits of the agency listener (BrokerConfig.transport); see config.proto.
  struct Transport {
    int max_concurrent_streams = 100;
    int resource_quota_mb = 256;
    int max_threads = 0;  // 0: gRPC's own limit
    absl::Duration handshake_timeout = absl::Seconds(5);
    absl::Duration max_connection_idle = absl::Seconds(600);
    absl::Duration max_connection_age = absl::Seconds(3600);
    absl::Duration max_connection_age_grace = absl::Seconds(30);
    int http2_max_frame_size = 16384;
    int max_metadata_bytes = 16384;
    absl::Duration min_ping_interval = absl::Seconds(10);
    int max_ping_strikes = 2;
    // Refuse client certificates of agencies not in the directory at the handshake.
    bool require_directory_agency = true;
  };
  Transport transport;
  // How often the access log's checkpoint is signed while it grows. Default 10 s.
  absl::Duration checkpoint_interval = absl::Seconds(10);
  // Fresh checkpoints are signed at most once per this interval. Default 1 s.
  absl::Duration fresh_checkpoint_interval = absl::Seconds(1);
  // Per-agency token buckets for publish, grants and fresh checkpoints (see
  // RateLimitOptions for the defaults).
  RateLimitOptions rate_limits;
  // Change-notification delivery (see DispatchOptions for the defaults).
  DispatchOptions dispatch;
  // CommitQueue::Options::gather: how long a durable write may wait for concurrent
  // ones to share its WAL sync. Default 250 µs.
  absl::Duration group_commit_wait = absl::Microseconds(250);
  // Benchmarks only: exchanges are not recorded. Default false.
  bool unsafe_disable_access_log = false;
  // Log format and level (program "tellonce-broker"). Default text at INFO.
  ops::LogOptions log;
  // host:port of the admin listener (/metrics, /healthz, /readyz); empty: none.
  // Default "127.0.0.1:7444".
  std::string admin_address = "127.0.0.1:7444";
  // Count RPCs by method and code, with their latency. Default true (off only to
  // measure what it costs).
  bool rpc_metrics = true;
};

// Reads a text-format tellonce.v1.BrokerConfig, applies defaults, resolves relative
// paths against the file's directory and checks required fields. Errors name the file
// and the field ("broker.textproto: tls.cert_file: required") or the syntax position.
absl::StatusOr<BrokerOptions> LoadBrokerConfig(const std::string& path);

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_CONFIG_H_
