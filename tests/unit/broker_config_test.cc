// The broker's configuration file: defaults, the exchange and commit settings, and
// refusals naming the file and the field.

#include "broker/config.h"

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::broker {
namespace {

using ::tellonce::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kMinimal[] = R"txt(
tls { ca_file: "pki/ca.pem" cert_file: "pki/broker.pem" key_file: "pki/broker.key" }
data_dir: "data"
directory_file: "directory.textproto"
signing { key_file: "pki/signing/broker-signing.key" key_id: "k-1" }
)txt";

class BrokerConfigTest : public ::testing::Test {
 protected:
  // Writes kMinimal plus `extra` as broker.textproto; returns its path.
  std::string Write(const std::string& extra) {
    const std::string path = dir_.path() + "/broker.textproto";
    std::ofstream(path) << kMinimal << extra << "\n";
    return path;
  }

  TempDir dir_;
};

TEST_F(BrokerConfigTest, AMinimalFileGetsTheDocumentedDefaults) {
  absl::StatusOr<BrokerOptions> options = LoadBrokerConfig(Write(""));
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->data_dir, dir_.path() + "/data");
  EXPECT_EQ(options->tls.ca_file, dir_.path() + "/pki/ca.pem");
  EXPECT_EQ(options->exchange_max_attributes, 32u);
  EXPECT_EQ(options->max_fetches_per_batch, 64u);
  EXPECT_EQ(options->connector_batches_in_flight, 2u);
  EXPECT_EQ(options->exchange_max_in_flight, 2048u);
  EXPECT_EQ(options->group_commit_wait, absl::Microseconds(250));
  EXPECT_EQ(options->dispatch.dead_retention, absl::Hours(24 * 30));
  EXPECT_EQ(options->signed_checkpoint_file, dir_.path() + "/data.checkpoint");
}

TEST_F(BrokerConfigTest, ReadsTheExchangeAndCommitSettings) {
  absl::StatusOr<BrokerOptions> options = LoadBrokerConfig(Write(R"txt(
exchange {
  max_fetches_per_batch: 1
  connector_batches_in_flight: 8
  max_in_flight: 100
  default_deadline_ms: 1500
}
group_commit_wait_us: 1000
notifications { dead_retention_days: 7 }
)txt"));
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->max_fetches_per_batch, 1u);
  EXPECT_EQ(options->connector_batches_in_flight, 8u);
  EXPECT_EQ(options->exchange_max_in_flight, 100u);
  EXPECT_EQ(options->exchange_default_deadline, absl::Milliseconds(1500));
  EXPECT_EQ(options->group_commit_wait, absl::Milliseconds(1));
  EXPECT_EQ(options->dispatch.dead_retention, absl::Hours(24 * 7));
}

TEST_F(BrokerConfigTest, RefusesOutOfRangeSettingsNamingFileAndField) {
  const struct {
    std::string text;
    std::string field;
  } cases[] = {
      {"exchange { max_fetches_per_batch: 257 }", "exchange.max_fetches_per_batch: at most 256"},
      {"exchange { connector_batches_in_flight: 1025 }",
       "exchange.connector_batches_in_flight: at most 1024"},
      {"exchange { max_attributes_per_request: 1025 }",
       "exchange.max_attributes_per_request: at most 1024"},
      {"group_commit_wait_us: 10001", "group_commit_wait_us: at most 10000"},
      {"notifications { dead_retention_days: 3651 }",
       "notifications.dead_retention_days: at most 3650"},
  };
  for (const auto& c : cases) {
    const std::string path = Write(c.text);
    absl::StatusOr<BrokerOptions> options = LoadBrokerConfig(path);
    ASSERT_FALSE(options.ok()) << c.text;
    EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_EQ(options.status().message(), absl::StrCat(path, ": ", c.field)) << c.text;
  }
}

TEST_F(BrokerConfigTest, IsolationAndTransportLimitsHaveDocumentedDefaults) {
  absl::StatusOr<BrokerOptions> options = LoadBrokerConfig(Write(""));
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->exchange_max_in_flight_per_consumer, 512u);
  EXPECT_EQ(options->exchange_max_deadline, absl::Seconds(30));
  EXPECT_EQ(options->max_fetches_per_provider, 512u);
  EXPECT_EQ(options->breaker_failure_threshold, 5u);
  EXPECT_EQ(options->breaker_cool_down, absl::Seconds(5));
  EXPECT_EQ(options->breaker_min_timeout, absl::Milliseconds(500));
  const BrokerOptions::Transport& t = options->transport;
  EXPECT_EQ(t.max_concurrent_streams, 100);
  EXPECT_EQ(t.resource_quota_mb, 256);
  EXPECT_EQ(t.handshake_timeout, absl::Seconds(5));
  EXPECT_EQ(t.max_connection_idle, absl::Seconds(600));
  EXPECT_EQ(t.max_connection_age, absl::Seconds(3600));
  EXPECT_EQ(t.max_connection_age_grace, absl::Seconds(30));
  EXPECT_EQ(t.http2_max_frame_size, 16384);
  EXPECT_EQ(t.max_metadata_bytes, 16384);
  EXPECT_EQ(t.min_ping_interval, absl::Seconds(10));
  EXPECT_EQ(t.max_ping_strikes, 2);
  EXPECT_TRUE(t.require_directory_agency);
}

TEST_F(BrokerConfigTest, ReadsIsolationAndTransportLimits) {
  absl::StatusOr<BrokerOptions> options = LoadBrokerConfig(Write(R"txt(
exchange {
  max_in_flight: 100
  max_in_flight_per_consumer: 10
  max_deadline_ms: 2000
  max_fetches_per_provider: 7
  circuit_breaker { failure_threshold: 3 cool_down_ms: 250 min_timeout_ms: 20 }
}
transport {
  max_concurrent_streams: 8
  resource_quota_mb: 64
  handshake_timeout_ms: 1500
  max_connection_idle_seconds: 60
  max_connection_age_seconds: 120
  max_connection_age_grace_seconds: 5
  max_metadata_bytes: 4096
  allow_agencies_outside_directory: true
}
)txt"));
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->exchange_max_in_flight_per_consumer, 10u);
  EXPECT_EQ(options->exchange_max_deadline, absl::Seconds(2));
  EXPECT_EQ(options->max_fetches_per_provider, 7u);
  EXPECT_EQ(options->breaker_failure_threshold, 3u);
  EXPECT_EQ(options->breaker_cool_down, absl::Milliseconds(250));
  EXPECT_EQ(options->breaker_min_timeout, absl::Milliseconds(20));
  EXPECT_EQ(options->transport.max_concurrent_streams, 8);
  EXPECT_EQ(options->transport.resource_quota_mb, 64);
  EXPECT_EQ(options->transport.handshake_timeout, absl::Milliseconds(1500));
  EXPECT_EQ(options->transport.max_connection_idle, absl::Seconds(60));
  EXPECT_EQ(options->transport.max_connection_age, absl::Seconds(120));
  EXPECT_EQ(options->transport.max_connection_age_grace, absl::Seconds(5));
  EXPECT_EQ(options->transport.max_metadata_bytes, 4096);
  EXPECT_FALSE(options->transport.require_directory_agency);
  // A small max_in_flight bounds the per-consumer default too.
  absl::StatusOr<BrokerOptions> small = LoadBrokerConfig(Write("exchange { max_in_flight: 2 }"));
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->exchange_max_in_flight_per_consumer, 2u);
  absl::StatusOr<BrokerOptions> off =
      LoadBrokerConfig(Write("exchange { circuit_breaker { disabled: true } }"));
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->breaker_failure_threshold, 0u);
}

TEST_F(BrokerConfigTest, RefusesOutOfRangeLimitsNamingFileAndField) {
  const struct {
    std::string text;
    std::string field;
  } cases[] = {
      {"exchange { max_in_flight: 10 max_in_flight_per_consumer: 11 }",
       "exchange.max_in_flight_per_consumer: at most exchange.max_in_flight (10)"},
      {"exchange { max_deadline_ms: 50 }",
       "exchange.max_deadline_ms: must be from 100 to 600000, got 50"},
      {"exchange { circuit_breaker { cool_down_ms: 700000 } }",
       "exchange.circuit_breaker.cool_down_ms: must be from 10 to 600000, got 700000"},
      {"transport { max_concurrent_streams: 20000 }",
       "transport.max_concurrent_streams: must be from 1 to 10000, got 20000"},
      {"transport { resource_quota_mb: 8 }",
       "transport.resource_quota_mb: must be from 16 to 65536, got 8"},
      {"transport { handshake_timeout_ms: 50 }",
       "transport.handshake_timeout_ms: must be from 100 to 120000, got 50"},
      {"transport { http2_max_frame_size: 1000 }",
       "transport.http2_max_frame_size: must be from 16384 to 16777215, got 1000"},
  };
  for (const auto& c : cases) {
    const std::string path = Write(c.text);
    absl::StatusOr<BrokerOptions> options = LoadBrokerConfig(path);
    ASSERT_FALSE(options.ok()) << c.text;
    EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_EQ(options.status().message(), absl::StrCat(path, ": ", c.field)) << c.text;
  }
}

TEST_F(BrokerConfigTest, TlsReloadSettingsHaveDefaultsAndBoundsNamingFileAndField) {
  absl::StatusOr<BrokerOptions> defaults = LoadBrokerConfig(Write(""));
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->tls_watch.poll_interval, absl::Seconds(5));
  EXPECT_EQ(defaults->tls_watch.expiry_warning, absl::Hours(168));

  auto write_tls = [&](const std::string& fields) {
    const std::string path = dir_.path() + "/tls.textproto";
    std::ofstream(path) << "tls { ca_file: \"ca.pem\" cert_file: \"b.pem\" key_file: \"b.key\" "
                        << fields << " }\ndata_dir: \"data\"\n"
                        << "directory_file: \"directory.textproto\"\n"
                        << "signing { key_file: \"s.key\" key_id: \"k\" }\n";
    return path;
  };
  absl::StatusOr<BrokerOptions> set =
      LoadBrokerConfig(write_tls("reload_interval_seconds: 1 expiry_warning_hours: 24"));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->tls_watch.poll_interval, absl::Seconds(1));
  EXPECT_EQ(set->tls_watch.expiry_warning, absl::Hours(24));

  std::string path = write_tls("reload_interval_seconds: 3601");
  EXPECT_EQ(LoadBrokerConfig(path).status().message(),
            absl::StrCat(path, ": tls.reload_interval_seconds: at most 3600"));
  path = write_tls("expiry_warning_hours: 8761");
  EXPECT_EQ(LoadBrokerConfig(path).status().message(),
            absl::StrCat(path, ": tls.expiry_warning_hours: at most 8760"));
}

// Issue 13: the TLS key also signed receipts and checkpoints. A broker needs a signing
// key of its own, named by a key id, and does not start without one.
TEST_F(BrokerConfigTest, TheSigningKeyIsRequiredAndNamedByAKeyId) {
  absl::StatusOr<BrokerOptions> options = LoadBrokerConfig(Write(""));
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->signing_key_file, dir_.path() + "/pki/signing/broker-signing.key");
  EXPECT_EQ(options->signing_key_id, "k-1");
  EXPECT_NE(options->signing_key_file, options->tls.key_file);

  auto write = [&](const std::string& signing) {
    const std::string path = dir_.path() + "/signing.textproto";
    std::ofstream(path) << R"txt(tls { ca_file: "a" cert_file: "b" key_file: "c" }
data_dir: "data" directory_file: "d" )txt" << signing << "\n";
    return path;
  };
  std::string path = write("");
  EXPECT_THAT(std::string(LoadBrokerConfig(path).status().message()),
              StartsWith(absl::StrCat(path, ": signing.key_file: required")));
  path = write(R"txt(signing { key_file: "s.key" })txt");
  EXPECT_EQ(LoadBrokerConfig(path).status().message(),
            absl::StrCat(path, ": signing.key_id: required"));
  path = write(R"txt(signing { key_file: "s.key" key_id: "a b" })txt");
  EXPECT_THAT(std::string(LoadBrokerConfig(path).status().message()),
              StartsWith(absl::StrCat(path, ": signing.key_id: key id: ")));
}

TEST_F(BrokerConfigTest, RefusesUnknownFieldsAndMissingRequiredOnes) {
  absl::StatusOr<BrokerOptions> unknown = LoadBrokerConfig(Write("exchange { batch_size: 4 }"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(std::string(unknown.status().message()),
              StartsWith(dir_.path() + "/broker.textproto:"));
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("batch_size"));

  const std::string path = dir_.path() + "/no-data-dir.textproto";
  std::ofstream(path) << R"txt(tls { ca_file: "a" cert_file: "b" key_file: "c" }
directory_file: "d")txt";
  absl::StatusOr<BrokerOptions> missing = LoadBrokerConfig(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), absl::StrCat(path, ": data_dir: required"));
}

// Issue 14: the backend is chosen in the config; data_dir stays a shorthand.
TEST_F(BrokerConfigTest, StorageChoosesTheBackendAndDataDirIsItsShorthand) {
  const std::string path = dir_.path() + "/storage.textproto";
  auto load = [&](const std::string& storage) {
    std::ofstream(path) << R"txt(tls { ca_file: "a" cert_file: "b" key_file: "c" }
directory_file: "d"
signing { key_file: "s" key_id: "k-1" }
)txt" << storage << "\n";
    return LoadBrokerConfig(path);
  };
  absl::StatusOr<BrokerOptions> rocks =
      load(R"(storage { rocksdb { path: "state" block_cache_mb: 128 } })");
  ASSERT_TRUE(rocks.ok()) << rocks.status();
  EXPECT_EQ(rocks->data_dir, dir_.path() + "/state");
  EXPECT_EQ(rocks->block_cache_mb, 128u);

  absl::StatusOr<BrokerOptions> both =
      load(R"(data_dir: "data" storage { rocksdb { path: "state" } })");
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(std::string(both.status().message()), HasSubstr("storage: set either data_dir"));

  absl::StatusOr<BrokerOptions> no_backend = load("storage { }");
  ASSERT_FALSE(no_backend.ok());
  EXPECT_THAT(std::string(no_backend.status().message()), HasSubstr("storage: choose a backend"));

  absl::StatusOr<BrokerOptions> no_path = load("storage { rocksdb { } }");
  ASSERT_FALSE(no_path.ok());
  EXPECT_EQ(no_path.status().message(), absl::StrCat(path, ": storage.rocksdb.path: required"));

  absl::StatusOr<BrokerOptions> cache_twice =
      load(R"(block_cache_mb: 8 storage { rocksdb { path: "state" } })");
  ASSERT_FALSE(cache_twice.ok());
  EXPECT_THAT(std::string(cache_twice.status().message()),
              HasSubstr("set storage.rocksdb.block_cache_mb"));
}

// Issue 15: storage { postgres { ... } }, its defaults, bounds and refusals.
TEST_F(BrokerConfigTest, PostgresStorageHasDefaultsAndBoundsNamingFileAndField) {
  const std::string path = dir_.path() + "/postgres.textproto";
  auto load = [&](const std::string& storage) {
    std::ofstream(path) << R"txt(tls { ca_file: "a" cert_file: "b" key_file: "c" }
directory_file: "d"
signing { key_file: "s" key_id: "k-1" }
)txt" << storage << "\n";
    return LoadBrokerConfig(path);
  };
  absl::StatusOr<BrokerOptions> minimal =
      load(R"(storage { postgres { conninfo: "host=/run/postgresql dbname=tellonce" } })");
  ASSERT_TRUE(minimal.ok()) << minimal.status();
  EXPECT_EQ(minimal->postgres.conninfo, "host=/run/postgresql dbname=tellonce");
  EXPECT_TRUE(minimal->data_dir.empty());
  EXPECT_EQ(minimal->postgres.pool_size, 8);
  EXPECT_EQ(minimal->postgres.commit_threads, 2);
  EXPECT_EQ(minimal->postgres.sequencer_lease, absl::Seconds(3));
  EXPECT_EQ(minimal->postgres.claim_lease, absl::Seconds(10));
  EXPECT_TRUE(minimal->postgres.migrate_on_start);

  absl::StatusOr<BrokerOptions> full = load(R"(storage { postgres {
    conninfo: "dbname=t" pool_size: 16 commit_threads: 4 sequencer_lease_ms: 1500
    claim_lease_ms: 2500 migrate_on_start: CHECK_ONLY replica_name: "broker-a.1" } })");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->postgres.pool_size, 16);
  EXPECT_EQ(full->postgres.commit_threads, 4);
  EXPECT_EQ(full->postgres.sequencer_lease, absl::Milliseconds(1500));
  EXPECT_EQ(full->postgres.claim_lease, absl::Milliseconds(2500));
  EXPECT_FALSE(full->postgres.migrate_on_start);
  EXPECT_EQ(full->postgres.replica_name, "broker-a.1");

  for (const auto& [storage, message] : std::vector<std::pair<std::string, std::string>>{
           {"storage { postgres { } }", "storage.postgres.conninfo: required"},
           {R"(storage { postgres { conninfo: "x" pool_size: 1 } })",
            "storage.postgres.pool_size: must be between 2 and 256"},
           {R"(storage { postgres { conninfo: "x" commit_threads: 17 } })",
            "storage.postgres.commit_threads: must be between 1 and 16"},
           {R"(storage { postgres { conninfo: "x" sequencer_lease_ms: 100 } })",
            "storage.postgres.sequencer_lease_ms: must be between 500 and 60000"},
           {R"(storage { postgres { conninfo: "x" replica_name: "a b" } })",
            "storage.postgres.replica_name:"},
           {R"(data_dir: "data" storage { postgres { conninfo: "x" } })",
            "storage: set either data_dir"},
           {R"(block_cache_mb: 8 storage { postgres { conninfo: "x" } })",
            "block_cache_mb: not used with storage.postgres"},
       }) {
    absl::StatusOr<BrokerOptions> bad = load(storage);
    ASSERT_FALSE(bad.ok()) << storage;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr(absl::StrCat(path, ": ")));
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr(message)) << storage;
  }
}

}  // namespace
}  // namespace tellonce::broker
