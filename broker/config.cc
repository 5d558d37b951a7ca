#include "broker/config.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "certs/signing.h"
#include "proto/identifiers.h"
#include "proto/textproto.h"
#include "tellonce/v1/config.pb.h"

namespace tellonce::broker {
namespace {

std::string Resolve(const std::filesystem::path& base, const std::string& path) {
  if (path.empty()) return path;
  std::filesystem::path p(path);
  if (p.is_absolute()) return p.lexically_normal().string();
  return (base / p).lexically_normal().string();
}

// An address to listen on (proto/identifiers.h); port 0 picks a free port.
absl::Status CheckListenAddress(const std::string& source, const std::string& address,
                                absl::string_view field = "listen_address") {
  if (!IsListenAddress(address)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", field, ": must be host:port, got \"", address, "\""));
  }
  return absl::OkStatus();
}

absl::Status LoadPostgres(const std::string& path, const tellonce::v1::PostgresStorageConfig& pg,
                          BrokerOptions::Postgres* out) {
  auto bad = [&](const std::string& field, const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": storage.postgres.", field, ": ", why));
  };
  if (pg.conninfo().empty()) return bad("conninfo", "required");
  if (pg.conninfo().find('\n') != std::string::npos) return bad("conninfo", "one line");
  out->conninfo = pg.conninfo();
  struct Bound {
    const char* field;
    uint32_t value, low, high;
  };
  for (const Bound& b : {Bound{"pool_size", pg.pool_size(), 2, 256},
                         Bound{"commit_threads", pg.commit_threads(), 1, 16},
                         Bound{"sequencer_lease_ms", pg.sequencer_lease_ms(), 500, 60000},
                         Bound{"claim_lease_ms", pg.claim_lease_ms(), 500, 600000}}) {
    if (b.value != 0 && (b.value < b.low || b.value > b.high)) {
      return bad(b.field, absl::StrCat("must be between ", b.low, " and ", b.high));
    }
  }
  if (pg.pool_size() != 0) out->pool_size = static_cast<int>(pg.pool_size());
  if (pg.commit_threads() != 0) out->commit_threads = static_cast<int>(pg.commit_threads());
  if (pg.sequencer_lease_ms() != 0) {
    out->sequencer_lease = absl::Milliseconds(pg.sequencer_lease_ms());
  }
  if (pg.claim_lease_ms() != 0) out->claim_lease = absl::Milliseconds(pg.claim_lease_ms());
  if (pg.replica_name().size() > 64 ||
      !std::all_of(pg.replica_name().begin(), pg.replica_name().end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
               c == '-';
      })) {
    return bad("replica_name", "letters, digits, '.', '_' or '-', at most 64");
  }
  out->replica_name = pg.replica_name();
  out->migrate_on_start =
      pg.migrate_on_start() != tellonce::v1::PostgresStorageConfig::CHECK_ONLY;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BrokerOptions> LoadBrokerConfig(const std::string& path) {
  tellonce::v1::BrokerConfig config;
  if (absl::Status s = ParseTextProtoFile(path, &config); !s.ok()) return s;

  std::filesystem::path base = std::filesystem::absolute(path).parent_path();
  BrokerOptions options;
  auto required = [&](const std::string& field) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", field, ": required"));
  };

  if (!config.listen_address().empty()) options.listen_address = config.listen_address();
  if (absl::Status s = CheckListenAddress(path, options.listen_address); !s.ok()) return s;

  if (config.tls().ca_file().empty()) return required("tls.ca_file");
  if (config.tls().cert_file().empty()) return required("tls.cert_file");
  if (config.tls().key_file().empty()) return required("tls.key_file");
  options.tls.ca_file = Resolve(base, config.tls().ca_file());
  options.tls.cert_file = Resolve(base, config.tls().cert_file());
  options.tls.key_file = Resolve(base, config.tls().key_file());
  options.tls.crl_dir = Resolve(base, config.tls().crl_dir());
  options.allow_readable_private_keys = config.allow_readable_private_keys();
  options.tls.refuse_readable_key = !options.allow_readable_private_keys;
  if (config.tls().reload_interval_seconds() > 3600) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tls.reload_interval_seconds: at most 3600"));
  }
  if (config.tls().reload_interval_seconds() != 0) {
    options.tls_watch.poll_interval = absl::Seconds(config.tls().reload_interval_seconds());
  }
  if (config.tls().expiry_warning_hours() > 8760) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tls.expiry_warning_hours: at most 8760"));
  }
  if (config.tls().expiry_warning_hours() != 0) {
    options.tls_watch.expiry_warning = absl::Hours(config.tls().expiry_warning_hours());
  }

  if (config.has_storage() && !config.data_dir().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": storage: set either data_dir (shorthand for storage { rocksdb { path } }) "
              "or storage, not both"));
  }
  if (config.has_storage()) {
    switch (config.storage().backend_case()) {
      case tellonce::v1::StorageConfig::kRocksdb: {
        const tellonce::v1::RocksDbStorage& rocks = config.storage().rocksdb();
        if (rocks.path().empty()) return required("storage.rocksdb.path");
        if (config.block_cache_mb() != 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              path, ": block_cache_mb: with storage, set storage.rocksdb.block_cache_mb"));
        }
        options.data_dir = Resolve(base, rocks.path());
        if (rocks.block_cache_mb() != 0) options.block_cache_mb = rocks.block_cache_mb();
        break;
      }
      case tellonce::v1::StorageConfig::kPostgres:
        if (config.block_cache_mb() != 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, ": block_cache_mb: not used with storage.postgres"));
        }
        if (absl::Status s = LoadPostgres(path, config.storage().postgres(), &options.postgres);
            !s.ok()) {
          return s;
        }
        break;
      case tellonce::v1::StorageConfig::BACKEND_NOT_SET:
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": storage: choose a backend (storage { rocksdb { path: ... } } or "
                  "storage { postgres { conninfo: ... } })"));
    }
  } else {
    if (config.data_dir().empty()) return required("data_dir");
    options.data_dir = Resolve(base, config.data_dir());
  }
  while (options.data_dir.size() > 1 && options.data_dir.back() == '/') {
    options.data_dir.pop_back();
  }
  // Beside a RocksDB data directory by default; with PostgreSQL only where configured
  // (each replica keeps its own, on its host).
  if (!config.signed_checkpoint_file().empty()) {
    options.signed_checkpoint_file = Resolve(base, config.signed_checkpoint_file());
  } else if (!options.data_dir.empty()) {
    options.signed_checkpoint_file = options.data_dir + ".checkpoint";
  }
  options.backup_dir = Resolve(base, config.backup().directory());
  if (config.directory_file().empty()) return required("directory_file");
  options.directory_file = Resolve(base, config.directory_file());

  const tellonce::v1::BrokerLimits& limits = config.limits();
  if (limits.max_receive_message_bytes() != 0) {
    if (limits.max_receive_message_bytes() < 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": limits.max_receive_message_bytes: must be at least 1024"));
    }
    options.max_receive_message_bytes = limits.max_receive_message_bytes();
  }
  if (limits.max_string_bytes() != 0) options.limits.max_string_bytes = limits.max_string_bytes();
  if (limits.max_page_size() != 0) options.limits.max_page_size = limits.max_page_size();
  if (limits.max_active_consents_per_consumer() > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": limits.max_active_consents_per_consumer: at most 1000"));
  }
  if (limits.max_active_consents_per_consumer() != 0) {
    options.consent_store.max_active_per_consumer =
        static_cast<int>(limits.max_active_consents_per_consumer());
  }

  if (config.group_commit_wait_us() > 10000) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": group_commit_wait_us: at most 10000"));
  }
  if (config.group_commit_wait_us() != 0) {
    options.group_commit_wait = absl::Microseconds(config.group_commit_wait_us());
  }
  if (config.checkpoint_interval_seconds() != 0) {
    options.checkpoint_interval = absl::Seconds(config.checkpoint_interval_seconds());
  }
  options.unsafe_disable_access_log = config.unsafe_disable_access_log();
  const tellonce::v1::NotificationDelivery& n = config.notifications();
  if (n.max_attempts() != 0) options.dispatch.max_attempts = static_cast<int>(n.max_attempts());
  if (n.max_age_seconds() != 0) options.dispatch.max_age = absl::Seconds(n.max_age_seconds());
  if (n.initial_backoff_ms() != 0) {
    options.dispatch.initial_backoff = absl::Milliseconds(n.initial_backoff_ms());
  }
  if (n.max_backoff_ms() != 0) options.dispatch.max_backoff = absl::Milliseconds(n.max_backoff_ms());
  if (n.window() != 0) {
    if (n.window() > 1024) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": notifications.window: at most 1024"));
    }
    options.dispatch.window = static_cast<int>(n.window());
  }
  if (options.dispatch.initial_backoff > options.dispatch.max_backoff) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": notifications.initial_backoff_ms: larger than max_backoff_ms"));
  }
  if (n.memory_window() != 0) {
    if (n.memory_window() > 1048576) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": notifications.memory_window: at most 1048576"));
    }
    options.dispatch.memory_window = static_cast<int>(n.memory_window());
  }
  if (n.dead_retention_days() != 0) {
    if (n.dead_retention_days() > 3650) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": notifications.dead_retention_days: at most 3650"));
    }
    options.dispatch.dead_retention = absl::Hours(24) * n.dead_retention_days();
  }
  if (options.dispatch.memory_window < options.dispatch.window) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": notifications.memory_window: smaller than window"));
  }
  if (config.fresh_checkpoint_interval_ms() > 60000) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": fresh_checkpoint_interval_ms: at most 60000"));
  }
  if (config.fresh_checkpoint_interval_ms() != 0) {
    options.fresh_checkpoint_interval = absl::Milliseconds(config.fresh_checkpoint_interval_ms());
  }
  auto rate_limit = [&](const tellonce::v1::RateLimit& limit, const std::string& field,
                        double* per_second, double* burst) -> absl::Status {
    if (limit.per_second() > 1000000) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": rate_limits.", field, ".per_second: at most 1000000"));
    }
    if (limit.burst() > 1000000) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": rate_limits.", field, ".burst: at most 1000000"));
    }
    if (limit.per_second() != 0) *per_second = limit.per_second();
    if (limit.burst() != 0) *burst = limit.burst();
    return absl::OkStatus();
  };
  RateLimitOptions& rl = options.rate_limits;
  if (absl::Status s = rate_limit(config.rate_limits().publish(), "publish",
                                  &rl.publish_per_second, &rl.publish_burst);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = rate_limit(config.rate_limits().grant(), "grant", &rl.grant_per_second,
                                  &rl.grant_burst);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          rate_limit(config.rate_limits().fresh_checkpoint(), "fresh_checkpoint",
                     &rl.fresh_checkpoint_per_second, &rl.fresh_checkpoint_burst);
      !s.ok()) {
    return s;
  }
  const tellonce::v1::ExchangeLimits& exchange = config.exchange();
  if (exchange.default_deadline_ms() != 0) {
    options.exchange_default_deadline = absl::Milliseconds(exchange.default_deadline_ms());
  }
  if (exchange.max_value_bytes() != 0) options.exchange_max_value_bytes = exchange.max_value_bytes();
  if (exchange.max_attributes_per_request() != 0) {
    if (exchange.max_attributes_per_request() > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": exchange.max_attributes_per_request: at most 1024"));
    }
    options.exchange_max_attributes = exchange.max_attributes_per_request();
  }
  if (exchange.max_fetches_per_batch() != 0) {
    if (exchange.max_fetches_per_batch() > 256) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": exchange.max_fetches_per_batch: at most 256"));
    }
    options.max_fetches_per_batch = exchange.max_fetches_per_batch();
  }
  if (exchange.max_in_flight() != 0) options.exchange_max_in_flight = exchange.max_in_flight();
  if (exchange.connector_batches_in_flight() != 0) {
    if (exchange.connector_batches_in_flight() > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": exchange.connector_batches_in_flight: at most 1024"));
    }
    options.connector_batches_in_flight = exchange.connector_batches_in_flight();
  }
  if (exchange.max_in_flight_per_consumer() != 0) {
    if (exchange.max_in_flight_per_consumer() > options.exchange_max_in_flight) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": exchange.max_in_flight_per_consumer: at most exchange.max_in_flight (",
          options.exchange_max_in_flight, ")"));
    }
    options.exchange_max_in_flight_per_consumer = exchange.max_in_flight_per_consumer();
  } else {
    options.exchange_max_in_flight_per_consumer =
        std::min(options.exchange_max_in_flight_per_consumer, options.exchange_max_in_flight);
  }
  // `value` of `field` within [low, high] when set (0 keeps the default).
  auto bounded = [&](absl::string_view field, uint32_t value, uint32_t low,
                     uint32_t high) -> absl::Status {
    if (value != 0 && (value < low || value > high)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", field, ": must be from ", low, " to ", high, ", got ", value));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = bounded("exchange.max_deadline_ms", exchange.max_deadline_ms(), 100, 600000);
      !s.ok()) {
    return s;
  }
  if (exchange.max_deadline_ms() != 0) {
    options.exchange_max_deadline = absl::Milliseconds(exchange.max_deadline_ms());
  }
  if (exchange.max_fetches_per_provider() != 0) {
    options.max_fetches_per_provider = exchange.max_fetches_per_provider();
  }
  const tellonce::v1::CircuitBreaker& breaker = exchange.circuit_breaker();
  if (absl::Status s = bounded("exchange.circuit_breaker.failure_threshold",
                               breaker.failure_threshold(), 1, 10000);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          bounded("exchange.circuit_breaker.cool_down_ms", breaker.cool_down_ms(), 10, 600000);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          bounded("exchange.circuit_breaker.min_timeout_ms", breaker.min_timeout_ms(), 1, 600000);
      !s.ok()) {
    return s;
  }
  if (breaker.failure_threshold() != 0) {
    options.breaker_failure_threshold = breaker.failure_threshold();
  }
  if (breaker.disabled()) options.breaker_failure_threshold = 0;
  if (breaker.cool_down_ms() != 0) {
    options.breaker_cool_down = absl::Milliseconds(breaker.cool_down_ms());
  }
  if (breaker.min_timeout_ms() != 0) {
    options.breaker_min_timeout = absl::Milliseconds(breaker.min_timeout_ms());
  }

  const tellonce::v1::TransportLimits& t = config.transport();
  BrokerOptions::Transport& transport = options.transport;
  struct IntField {
    absl::string_view field;
    uint32_t value;
    uint32_t low, high;
    int* out;
  };
  for (const IntField& f : {
           IntField{"transport.max_concurrent_streams", t.max_concurrent_streams(), 1, 10000,
                    &transport.max_concurrent_streams},
           IntField{"transport.resource_quota_mb", t.resource_quota_mb(), 16, 65536,
                    &transport.resource_quota_mb},
           IntField{"transport.max_threads", t.max_threads(), 2, 100000, &transport.max_threads},
           IntField{"transport.http2_max_frame_size", t.http2_max_frame_size(), 16384, 16777215,
                    &transport.http2_max_frame_size},
           IntField{"transport.max_metadata_bytes", t.max_metadata_bytes(), 1024, 1048576,
                    &transport.max_metadata_bytes},
           IntField{"transport.max_ping_strikes", t.max_ping_strikes(), 1, 100,
                    &transport.max_ping_strikes},
       }) {
    if (absl::Status s = bounded(f.field, f.value, f.low, f.high); !s.ok()) return s;
    if (f.value != 0) *f.out = static_cast<int>(f.value);
  }
  struct TimeField {
    absl::string_view field;
    uint32_t value;
    uint32_t low, high;
    absl::Duration unit;
    absl::Duration* out;
  };
  for (const TimeField& f : {
           TimeField{"transport.handshake_timeout_ms", t.handshake_timeout_ms(), 100, 120000,
                     absl::Milliseconds(1), &transport.handshake_timeout},
           TimeField{"transport.max_connection_idle_seconds", t.max_connection_idle_seconds(), 1,
                     86400, absl::Seconds(1), &transport.max_connection_idle},
           TimeField{"transport.max_connection_age_seconds", t.max_connection_age_seconds(), 10,
                     604800, absl::Seconds(1), &transport.max_connection_age},
           TimeField{"transport.max_connection_age_grace_seconds",
                     t.max_connection_age_grace_seconds(), 1, 3600, absl::Seconds(1),
                     &transport.max_connection_age_grace},
           TimeField{"transport.min_ping_interval_ms", t.min_ping_interval_ms(), 1, 3600000,
                     absl::Milliseconds(1), &transport.min_ping_interval},
       }) {
    if (absl::Status s = bounded(f.field, f.value, f.low, f.high); !s.ok()) return s;
    if (f.value != 0) *f.out = f.unit * f.value;
  }
  transport.require_directory_agency = !t.allow_agencies_outside_directory();

  if (config.shutdown_grace_seconds() != 0) {
    options.shutdown_grace = absl::Seconds(config.shutdown_grace_seconds());
  }
  if (config.block_cache_mb() != 0) options.block_cache_mb = config.block_cache_mb();

  options.log = ops::LogOptionsFromConfig(config.log(), "tellonce-broker");
  if (config.admin().listen_address() == "off") {
    options.admin_address.clear();
  } else if (!config.admin().listen_address().empty()) {
    options.admin_address = config.admin().listen_address();
    if (absl::Status s = CheckListenAddress(path, options.admin_address, "admin.listen_address");
        !s.ok()) {
      return s;
    }
  }
  options.rpc_metrics = !config.admin().unsafe_disable_rpc_metrics();

  // No fallback to the TLS key: receipts and checkpoints are signed by a key of their
  // own, or the broker does not start (broker/README.md, "Keys").
  if (config.signing().key_file().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": signing.key_file: required (the receipt and checkpoint signing key, separate "
              "from tls.key_file; make-dev-pki writes signing/broker-signing.key)"));
  }
  if (config.signing().key_id().empty()) return required("signing.key_id");
  if (absl::Status s = certs::CheckKeyId(config.signing().key_id()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": signing.key_id: ", s.message()));
  }
  options.signing_key_file = Resolve(base, config.signing().key_file());
  options.signing_key_id = config.signing().key_id();
  return options;
}

}  // namespace tellonce::broker
