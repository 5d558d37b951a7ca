#include "broker/broker.h"

#include "absl/strings/str_cat.h"
#include "ops/log.h"
#include "ops/malformed_request.h"
#include "certs/identity.h"
#include "certs/signing.h"
#include "certs/tls.h"
#include "ops/version.h"
#include "proto/time.h"
#include "storage/postgres/postgres_storage.h"
#include "storage/rocksdb/rocks_storage.h"
#include "certs/tls_watch.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/server_builder.h"

namespace tellonce::broker {
namespace {

// With several replicas over one database: how often the transparency log looks for
// events other replicas appended (the sequencer) and for the tree and checkpoints the
// sequencer stored (the others).
constexpr absl::Duration kSharedPollInterval = absl::Milliseconds(200);

// The broker's data, as messages name it.
std::string StorageName(const BrokerOptions& options) {
  return options.postgres.conninfo.empty() ? options.data_dir : "storage.postgres";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Broker>> Broker::Start(const BrokerOptions& options) {
  std::unique_ptr<Broker> broker(new Broker(options));

  absl::StatusOr<std::shared_ptr<const consent::Directory>> directory =
      consent::Directory::LoadFile(options.directory_file);
  if (!directory.ok()) return directory.status();
  const std::string trust_domain = (*directory)->trust_domain();
  broker->directory_ = std::make_unique<consent::DirectoryHolder>(*std::move(directory));

  absl::StatusOr<std::unique_ptr<certs::TlsMaterialWatcher>> tls =
      certs::TlsMaterialWatcher::Start(options.tls, options.tls_watch);
  if (!tls.ok()) return tls.status();
  broker->tls_ = *std::move(tls);
  // Only members of the federation get past the handshake: a certificate the CA issued
  // to an agency that is not (or no longer) in the directory is refused before any
  // HTTP/2 stream exists. The directory is read at each handshake, so a reload applies
  // to new connections at once.
  std::function<absl::Status(std::string_view)> admit;
  if (options.transport.require_directory_agency) {
    admit = [directory = broker->directory_.get()](std::string_view spiffe_id) -> absl::Status {
      std::shared_ptr<const consent::Directory> current = directory->Current();
      absl::StatusOr<certs::SpiffeId> id = certs::ParseSpiffeId(spiffe_id);
      if (!id.ok()) return absl::UnauthenticatedError("peer certificate: not a federation id");
      if (id->trust_domain != current->trust_domain() || id->is_broker ||
          current->FindAgency(id->agency_id) == nullptr) {
        return absl::PermissionDeniedError("peer certificate: not an agency of the directory");
      }
      return absl::OkStatus();
    };
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      broker->tls_->ServerCredentials(std::move(admit));
  if (!credentials.ok()) return credentials.status();
  if (!options.allow_readable_private_keys) {
    if (absl::Status s =
            certs::CheckPrivateKeyPermissions("signing.key_file", options.signing_key_file);
        !s.ok()) {
      return s;
    }
  }
  absl::StatusOr<certs::SigningKey> signing_key =
      certs::SigningKey::FromPemFile(options.signing_key_file, options.signing_key_id);
  if (!signing_key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("signing.key_file: ", signing_key.status().message()));
  }

  // Replies to gRPC go from the completion thread, so the next group's write and WAL
  // sync do not wait for them (tests/bench/README.md: +4% exchanges/s).
  ops::MetricsRegistry& metrics = *broker->metrics_;
  absl::StatusOr<std::unique_ptr<storage::Storage>> stored;
  storage::postgres::PostgresStorage* shared = nullptr;
  if (!options.postgres.conninfo.empty()) {
    // Several replicas over one database (storage/postgres/README.md).
    const BrokerOptions::Postgres& pg = options.postgres;
    storage::postgres::PostgresOptions pg_options;
    pg_options.conninfo = pg.conninfo;
    pg_options.pool_size = pg.pool_size;
    pg_options.commit_threads = pg.commit_threads;
    pg_options.gather = options.group_commit_wait;
    pg_options.sequencer_lease = pg.sequencer_lease;
    pg_options.claim_lease = pg.claim_lease;
    pg_options.apply_migrations = pg.migrate_on_start;
    pg_options.replica_name = pg.replica_name;
    absl::StatusOr<std::unique_ptr<storage::postgres::PostgresStorage>> opened =
        storage::postgres::OpenPostgresStorage(std::move(pg_options));
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("storage.postgres: ", opened.status().message()));
    }
    shared = opened->get();
    stored = std::unique_ptr<storage::Storage>(std::move(*opened));
  } else {
    stored = storage::OpenRocksStorage(
        {.path = options.data_dir,
         .block_cache_mb = options.block_cache_mb,
         .gather = options.group_commit_wait,
         .completion_thread = true,
         .group_operations =
             &metrics
                  .AddHistogram("tellonce_commit_group_operations",
                                "Operations committed together in one group (one write).", {},
                                {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024})
                  .Get(),
         .write_seconds = &metrics
                               .AddHistogram("tellonce_commit_write_duration_seconds",
                                             "Time of one group's write, WAL sync included.", {},
                                             ops::LatencyBuckets())
                               .Get()});
  }
  if (!stored.ok()) return stored.status();
  broker->storage_ = *std::move(stored);
  broker->store_ = consent::NewConsentStore(broker->storage_.get(), options.consent_store);
  certs::SigningKey checkpoint_key = *signing_key;
  broker->registry_ = std::make_unique<consent::ConsentRegistry>(
      broker->directory_.get(), broker->store_.get(), *std::move(signing_key),
      consent::ConsentRegistry::Options{.limits = options.limits,
                                        .issuer = certs::BrokerSpiffeId(trust_domain)});
  ops::Family<ops::Counter>& rate_limited = metrics.AddCounter(
      "tellonce_rate_limited_total",
      "Calls refused by an agency's rate limit (rate_limits), by agency and kind.",
      {"agency", "what"});
  const RateLimitOptions& rl = options.rate_limits;
  broker->publish_limit_ = std::make_unique<RateLimiter>(
      "publish", RateLimiter::Options{.per_second = rl.publish_per_second, .burst = rl.publish_burst},
      &rate_limited);
  broker->grant_limit_ = std::make_unique<RateLimiter>(
      "grant", RateLimiter::Options{.per_second = rl.grant_per_second, .burst = rl.grant_burst},
      &rate_limited);
  broker->fresh_checkpoint_limit_ = std::make_unique<RateLimiter>(
      "fresh_checkpoint",
      RateLimiter::Options{.per_second = rl.fresh_checkpoint_per_second,
                           .burst = rl.fresh_checkpoint_burst},
      &rate_limited);
  broker->consent_service_ = std::make_unique<ConsentServiceImpl>(
      broker->directory_.get(), broker->registry_.get(), broker->grant_limit_.get());
  broker->access_log_ = std::make_unique<AccessLog>(broker->storage_.get());
  // Refuses data whose log is behind a checkpoint already signed (broker/checkpoint_guard.h).
  absl::StatusOr<std::unique_ptr<CheckpointGuard>> guard =
      CheckpointGuard::Open(options.signed_checkpoint_file, StorageName(options),
                            broker->storage_.get(), broker->access_log_.get(),
                            options.accept_log_rollback);
  if (!guard.ok()) return guard.status();
  broker->checkpoint_guard_ = *std::move(guard);
  broker->backups_ =
      std::make_unique<BackupMaker>(options.backup_dir, broker->storage_.get(),
                                    broker->access_log_.get(), broker->checkpoint_guard_.get());
  absl::StatusOr<std::unique_ptr<TransparencyLog>> transparency = TransparencyLog::Start(
      broker->storage_.get(), broker->access_log_.get(), std::move(checkpoint_key),
      TransparencyLog::Options{
          .issuer = certs::BrokerSpiffeId(trust_domain),
          // Shared: the sequencer signs at the fresh pace while the log grows, since a
          // fresh request made at another replica cannot reach it.
          .checkpoint_interval =
              shared != nullptr
                  ? std::min(options.checkpoint_interval, options.fresh_checkpoint_interval)
                  : options.checkpoint_interval,
          .fresh_interval = options.fresh_checkpoint_interval,
          // Shared: events appended at other replicas are found by polling.
          .poll_interval = shared != nullptr ? kSharedPollInterval : absl::Seconds(1),
          .on_signed = [guard = broker->checkpoint_guard_.get()](
                           const tellonce::v1::SignedCheckpoint& c) { return guard->Record(c); }});
  if (!transparency.ok()) return transparency.status();
  broker->transparency_ = *std::move(transparency);
  broker->storage_->SetAppendListener([t = broker->transparency_.get()] { t->Notify(); });
  broker->transparency_service_ = std::make_unique<TransparencyServiceImpl>(
      broker->directory_.get(), broker->transparency_.get(), options.limits,
      broker->fresh_checkpoint_limit_.get());
  CircuitBreaker::Options breaker;
  breaker.failure_threshold = options.breaker_failure_threshold;
  breaker.cool_down = options.breaker_cool_down;
  broker->connectors_ = std::make_unique<ConnectorPool>(
      ConnectorPool::Options{.tls = options.tls,
                             .tls_watcher = broker->tls_.get(),
                             .max_fetches_per_batch = options.max_fetches_per_batch,
                             .batches_in_flight = options.connector_batches_in_flight,
                             .metrics = &metrics,
                             .max_fetches_per_provider = options.max_fetches_per_provider,
                             .breaker = breaker,
                             .breaker_min_timeout = options.breaker_min_timeout});
  broker->exchange_ = std::make_unique<Exchange>(
      broker->directory_.get(), broker->store_.get(), broker->access_log_.get(),
      broker->connectors_.get(),
      ExchangeOptions{.default_deadline = options.exchange_default_deadline,
                      .max_value_bytes = options.exchange_max_value_bytes,
                      .max_attributes_per_request = options.exchange_max_attributes,
                      .max_string_bytes = options.limits.max_string_bytes,
                      .max_in_flight = options.exchange_max_in_flight,
                      .max_in_flight_per_consumer = options.exchange_max_in_flight_per_consumer,
                      .max_deadline = options.exchange_max_deadline,
                      .record_access = !options.unsafe_disable_access_log});
  if (options.unsafe_disable_access_log) {
    ops::LogWarning("unsafe_disable_access_log is set: exchanges are NOT recorded (benchmarks only)");
  }
  broker->exchange_service_ =
      std::make_unique<ExchangeServiceImpl>(broker->directory_.get(), broker->exchange_.get());
  ClaimSubscriber claim;
  if (shared != nullptr) {
    claim = [shared](const std::string& subscriber) { return shared->ClaimSubscriber(subscriber); };
  }
  absl::StatusOr<std::unique_ptr<Outbox>> outbox = Outbox::Start(
      &broker->storage_->deliveries(), broker->directory_.get(), broker->connectors_.get(),
      options.dispatch, std::move(claim));
  if (!outbox.ok()) return outbox.status();
  broker->outbox_ = *std::move(outbox);
  broker->publisher_ = std::make_unique<ChangePublisher>(
      broker->directory_.get(), broker->store_.get(), broker->storage_.get(),
      broker->outbox_.get(), options.limits);
  broker->notification_service_ =
      std::make_unique<NotificationServiceImpl>(broker->directory_.get(), broker->publisher_.get(),
                                                broker->publish_limit_.get());
  broker->delivery_admin_service_ =
      std::make_unique<DeliveryAdminServiceImpl>(broker->directory_.get(), broker->outbox_.get(),
                                                 options.limits);
  broker->admin_service_ = std::make_unique<AdminServiceImpl>(
      broker->directory_.get(),
      MakeBrokerStatusSource(absl::Now(), broker->access_log_.get(), broker->transparency_.get(),
                             broker->outbox_.get(), [raw = broker.get()](tellonce::v1::BrokerStatus* status) {
                               const certs::TlsStatus tls = raw->tls_status();
                               *status->mutable_tls_certificate_not_after() =
                                   ToProtoTime(tls.cert_not_after);
                               if (tls.crl_next_update.has_value()) {
                                 *status->mutable_crl_next_update() =
                                     ToProtoTime(*tls.crl_next_update);
                               }
                               for (std::string& reason : raw->NotReadyReasons()) {
                                 status->add_not_ready_reasons(std::move(reason));
                               }
                             }),
      [backups = broker->backups_.get()] { return backups->Run(); });

  ops::Family<ops::Counter>& reloads = metrics.AddCounter(
      "tellonce_directory_reloads_total", "Directory reloads (SIGHUP), by result.", {"result"});
  broker->directory_reloads_ok_ = &reloads.With({"ok"});
  broker->directory_reloads_failed_ = &reloads.With({"refused"});
  broker->AddCollectors();
  metrics.AddProcessCollector();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, *credentials, &broker->port_);
  // A second broker on the same port must fail to start, not share the traffic.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_receive_message_bytes));
  // Transport limits against floods (broker/README.md, "Transport limits and what gRPC
  // 1.51 cannot do").
  const BrokerOptions::Transport& t = options.transport;
  grpc::ResourceQuota quota("tellonce-broker");
  quota.Resize(static_cast<size_t>(t.resource_quota_mb) << 20);
  if (t.max_threads > 0) quota.SetMaxThreads(t.max_threads);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, t.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(t.handshake_timeout)));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(t.max_connection_idle)));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(t.max_connection_age)));
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
      static_cast<int>(absl::ToInt64Milliseconds(t.max_connection_age_grace)));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, t.http2_max_frame_size);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, t.max_metadata_bytes);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(t.min_ping_interval)));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, t.max_ping_strikes);
  builder.RegisterService(broker->consent_service_.get());
  builder.RegisterService(broker->exchange_service_.get());
  builder.RegisterService(broker->transparency_service_.get());
  builder.RegisterService(broker->notification_service_.get());
  builder.RegisterService(broker->delivery_admin_service_.get());
  const std::vector<std::string> services = {
      tellonce::v1::ConsentService::service_full_name(),
      tellonce::v1::ExchangeService::service_full_name(),
      tellonce::v1::TransparencyService::service_full_name(),
      tellonce::v1::NotificationService::service_full_name(),
      tellonce::v1::DeliveryAdminService::service_full_name(),
      tellonce::v1::AdminService::service_full_name()};
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  // First, so that the metrics count the status the client gets.
  creators.push_back(ops::MalformedRequestInterceptorFactory(services));
  if (options.rpc_metrics) {
    broker->rpc_metrics_ = std::make_unique<ops::RpcMetrics>(&metrics, services);
    creators.push_back(broker->rpc_metrics_->InterceptorFactory());
  }
  builder.experimental().SetInterceptorCreators(std::move(creators));
  builder.RegisterService(broker->admin_service_.get());
  broker->server_ = builder.BuildAndStart();
  if (broker->server_ == nullptr || broker->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("listen_address: cannot listen on ", options.listen_address));
  }
  if (!options.admin_address.empty()) {
    Broker* raw = broker.get();
    absl::StatusOr<std::unique_ptr<ops::AdminServer>> admin = ops::AdminServer::Start(
        {.address = options.admin_address,
         .metrics = broker->metrics_.get(),
         .not_ready = [raw] { return raw->NotReadyReasons(); }});
    if (!admin.ok()) return admin.status();
    broker->admin_ = *std::move(admin);
    ops::LogInfo("admin listener serving /metrics, /healthz and /readyz",
                 {{"address", options.admin_address},
                  {"port", absl::StrCat(broker->admin_->port())}});
  }
  ops::LogInfo(
      absl::StrCat("serving ConsentService, ExchangeService, TransparencyService, "
                   "NotificationService, DeliveryAdminService and AdminService on ",
                   options.listen_address, " (port ", broker->port_, "), trust domain ",
                   trust_domain, ", data in ",
                   options.postgres.conninfo.empty()
                       ? options.data_dir
                       : absl::StrCat("PostgreSQL (replica ", shared->replica_id(), ")")));
  return broker;
}

Broker::~Broker() { Shutdown(); }

absl::Status Broker::ReloadDirectory() {
  absl::StatusOr<std::shared_ptr<const consent::Directory>> next =
      consent::Directory::LoadFile(options_.directory_file);
  absl::Status result = next.status();
  if (result.ok() && (*next)->trust_domain() != directory_->Current()->trust_domain()) {
    result = absl::FailedPreconditionError(
        absl::StrCat(options_.directory_file, ": trust_domain: cannot change while running"));
  }
  if (result.ok()) directory_->Replace(*std::move(next));
  (result.ok() ? directory_reloads_ok_ : directory_reloads_failed_)->Add();
  absl::MutexLock lock(&mu_);
  directory_error_ = result;
  return result;
}

std::vector<std::string> Broker::NotReadyReasons() const {
  std::vector<std::string> reasons;
  {
    absl::MutexLock lock(&mu_);
    if (!directory_error_.ok()) {
      reasons.push_back(absl::StrCat("directory: the file on disk was refused, the previous "
                                     "directory is still in force: ",
                                     directory_error_.message()));
    }
  }
  if (tls_ != nullptr) {
    if (const absl::Status usable = tls_->status().usable; !usable.ok()) {
      reasons.push_back(absl::StrCat("tls: ", usable.message()));
    }
  }
  if (storage_ == nullptr) {
    reasons.push_back("database: closed");
  } else if (absl::Status health = storage_->Health(); !health.ok()) {
    reasons.push_back(std::string(health.message()));
  }
  return reasons;
}

void Broker::AddCollectors() {
  metrics_->AddCollector([this](ops::MetricsWriter& w) {
    w.Family("tellonce_build_info", "Always 1; the version of this build as a label.", "gauge");
    w.Sample("tellonce_build_info", {{"version", ops::kVersion}}, 1.0);
    w.Gauge("tellonce_ready", "1 when /readyz answers 200, else 0.",
            NotReadyReasons().empty() ? 1.0 : 0.0);

    const ExchangeCounters& e = exchange_->counters();
    w.Family("tellonce_exchange_attribute_results_total",
             "Attributes answered to consumers, by result code.", "counter");
    for (size_t code = 1; code < e.results.size(); ++code) {
      if (!tellonce::v1::ResultCode_IsValid(static_cast<int>(code))) continue;
      w.Sample("tellonce_exchange_attribute_results_total",
               {{"result", tellonce::v1::ResultCode_Name(static_cast<tellonce::v1::ResultCode>(code))}},
               e.results[code].load(std::memory_order_relaxed));
    }
    w.Counter("tellonce_exchange_refused_busy_total",
              "GetAttributes calls refused because exchange.max_in_flight were in progress.",
              e.refused_busy.load(std::memory_order_relaxed));
    w.Counter("tellonce_exchange_refused_consumer_busy_total",
              "GetAttributes calls refused because their consumer had "
              "exchange.max_in_flight_per_consumer in progress.",
              e.refused_consumer_busy.load(std::memory_order_relaxed));
    w.Family("tellonce_connector_refused_total",
             "Fetches refused by the broker without calling the connector, by reason.",
             "counter");
    w.Sample("tellonce_connector_refused_total", {{"reason", "circuit_open"}},
             connectors_->counters().refused_circuit_open.load(std::memory_order_relaxed));
    w.Sample("tellonce_connector_refused_total", {{"reason", "provider_limit"}},
             connectors_->counters().refused_provider_limit.load(std::memory_order_relaxed));
    w.Counter("tellonce_exchange_provider_answers_rejected_total",
              "Provider answers (or parts) dropped: unasked, repeated, wrong type, too large.",
              e.provider_answers_rejected.load(std::memory_order_relaxed));
    w.Counter("tellonce_connector_fetches_total",
              "Attribute fetches sent to connectors (several may share one call).",
              connectors_->counters().fetches.load(std::memory_order_relaxed));

    const storage::Storage::CommitCounts q = storage_->commit_counts();
    w.Counter("tellonce_commit_operations_total", "Durable operations committed.", q.operations);
    w.Counter("tellonce_commit_groups_total", "Groups of operations taken by the commit thread.",
              q.groups);
    w.Counter("tellonce_commit_writes_total", "Database writes (one WAL sync each).", q.writes);

    const std::vector<Outbox::Depth> depths = outbox_->Depths();
    w.Family("tellonce_outbox_deliveries", "Change deliveries stored, by subscriber and state.",
             "gauge");
    for (const Outbox::Depth& d : depths) {
      w.Sample("tellonce_outbox_deliveries", {{"subscriber", d.subscriber}, {"state", "pending"}},
               static_cast<uint64_t>(d.pending));
      w.Sample("tellonce_outbox_deliveries", {{"subscriber", d.subscriber}, {"state", "dead"}},
               static_cast<uint64_t>(d.dead));
    }

    w.Gauge("tellonce_access_log_leaves", "Access events hashed into the transparency tree.",
            static_cast<double>(transparency_->tree_size()));
    tellonce::v1::Checkpoint last_body;
    if (std::optional<tellonce::v1::SignedCheckpoint> signed_last = transparency_->LastSigned();
        signed_last.has_value() && last_body.ParseFromString(signed_last->body())) {
      const tellonce::v1::Checkpoint* last = &last_body;
      w.Gauge("tellonce_access_log_checkpoint_leaves", "Tree size of the last signed checkpoint.",
              static_cast<double>(last->tree_size()));
      w.Gauge("tellonce_access_log_checkpoint_age_seconds",
              "Seconds since the last signed checkpoint.",
              absl::ToDoubleSeconds(absl::Now() - FromProtoTime(last->signed_at())));
    }
    certs::WriteTlsMetrics(tls_->status(), w);
    w.Gauge("tellonce_uptime_seconds", "Seconds since the broker started.",
            absl::ToDoubleSeconds(absl::Now() - started_));
  });
}

void Broker::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // The admin listener's collectors read the parts taken apart below.
  admin_.reset();
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      absl::ToChronoSeconds(options_.shutdown_grace));
    server_->Wait();
  }
  server_.reset();
  if (exchange_ != nullptr) {
    const ExchangeCounters& c = exchange_->counters();
    ops::LogInfo(absl::StrCat(
        "exchange: ", c.requests.load(), " requests, ", c.delivered(),
        " attributes delivered, ", c.refused(), " refused, ",
        c.provider_answers_rejected.load(), " provider answers rejected, ",
        c.provider_calls_failed.load(), " provider calls failed, ", c.refused_busy.load(),
        " refused as busy; ", connectors_->counters().fetches.load(), " fetches in ",
        connectors_->counters().calls.load(), " connector calls"));
  }
  if (storage_ != nullptr) {
    const storage::Storage::CommitCounts c = storage_->commit_counts();
    ops::LogInfo(absl::StrCat("commit queue: ", c.operations, " operations in ", c.groups,
                              " groups, ", c.writes, " writes"));
  }
  exchange_service_.reset();
  exchange_.reset();
  notification_service_.reset();
  delivery_admin_service_.reset();
  admin_service_.reset();
  publisher_.reset();
  // Commits and completes everything still queued, while the outbox, the access log
  // and the transparency log that completions call into are still there.
  if (storage_ != nullptr) storage_->Close();
  outbox_.reset();
  connectors_.reset();
  transparency_service_.reset();
  transparency_.reset();
  backups_.reset();
  checkpoint_guard_.reset();
  access_log_.reset();
  consent_service_.reset();
  registry_.reset();
  store_.reset();
  storage_.reset();
}

}  // namespace tellonce::broker
