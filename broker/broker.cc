#include "broker/broker.h"

#include "absl/strings/str_cat.h"
#include "ops/log.h"
#include "certs/identity.h"
#include "certs/signing.h"
#include "certs/tls.h"
#include "certs/tls_watch.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"

namespace tellonce::broker {

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
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      broker->tls_->ServerCredentials();
  if (!credentials.ok()) return credentials.status();
  absl::StatusOr<certs::SigningKey> signing_key =
      certs::SigningKey::FromPemFile(options.tls.key_file);
  if (!signing_key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls.key_file: ", signing_key.status().message()));
  }

  absl::StatusOr<std::unique_ptr<consent::Database>> db =
      consent::Database::Open({.path = options.data_dir, .block_cache_mb = options.block_cache_mb});
  if (!db.ok()) return db.status();
  broker->db_ = *std::move(db);
  // Replies to gRPC go from the completion thread, so the next group's write and WAL
  // sync do not wait for them (tests/bench/README.md: +4% exchanges/s).
  broker->queue_ = std::make_unique<consent::CommitQueue>(
      broker->db_.get(), consent::CommitQueue::Options{.gather = options.group_commit_wait,
                                                       .completion_thread = true});
  broker->store_ = consent::NewRocksConsentStore(broker->db_.get(), broker->queue_.get());
  certs::SigningKey checkpoint_key = *signing_key;
  broker->registry_ = std::make_unique<consent::ConsentRegistry>(
      broker->directory_.get(), broker->store_.get(), *std::move(signing_key),
      consent::ConsentRegistry::Options{.limits = options.limits,
                                        .issuer = certs::BrokerSpiffeId(trust_domain)});
  broker->consent_service_ =
      std::make_unique<ConsentServiceImpl>(broker->directory_.get(), broker->registry_.get());
  broker->access_log_ = std::make_unique<AccessLog>(broker->db_.get(), broker->queue_.get());
  absl::StatusOr<std::unique_ptr<TransparencyLog>> transparency = TransparencyLog::Start(
      broker->db_.get(), broker->access_log_.get(), std::move(checkpoint_key),
      TransparencyLog::Options{.issuer = certs::BrokerSpiffeId(trust_domain),
                               .checkpoint_interval = options.checkpoint_interval});
  if (!transparency.ok()) return transparency.status();
  broker->transparency_ = *std::move(transparency);
  broker->access_log_->set_listener([t = broker->transparency_.get()] { t->Notify(); });
  broker->transparency_service_ = std::make_unique<TransparencyServiceImpl>(
      broker->directory_.get(), broker->transparency_.get(), options.limits);
  broker->connectors_ = std::make_unique<ConnectorPool>(
      ConnectorPool::Options{.tls = options.tls,
                             .tls_watcher = broker->tls_.get(),
                             .max_fetches_per_batch = options.max_fetches_per_batch,
                             .batches_in_flight = options.connector_batches_in_flight});
  broker->exchange_ = std::make_unique<Exchange>(
      broker->directory_.get(), broker->store_.get(), broker->access_log_.get(),
      broker->connectors_.get(),
      ExchangeOptions{.default_deadline = options.exchange_default_deadline,
                      .max_value_bytes = options.exchange_max_value_bytes,
                      .max_attributes_per_request = options.exchange_max_attributes,
                      .max_string_bytes = options.limits.max_string_bytes,
                      .max_in_flight = options.exchange_max_in_flight,
                      .record_access = !options.unsafe_disable_access_log});
  if (options.unsafe_disable_access_log) {
    ops::LogWarning("unsafe_disable_access_log is set: exchanges are NOT recorded (benchmarks only)");
  }
  broker->exchange_service_ =
      std::make_unique<ExchangeServiceImpl>(broker->directory_.get(), broker->exchange_.get());
  absl::StatusOr<std::unique_ptr<Outbox>> outbox = Outbox::Start(
      broker->db_.get(), broker->directory_.get(), broker->connectors_.get(), options.dispatch);
  if (!outbox.ok()) return outbox.status();
  broker->outbox_ = *std::move(outbox);
  broker->publisher_ = std::make_unique<ChangePublisher>(
      broker->directory_.get(), broker->store_.get(), broker->queue_.get(),
      broker->access_log_.get(), broker->outbox_.get(), options.limits);
  broker->notification_service_ =
      std::make_unique<NotificationServiceImpl>(broker->directory_.get(), broker->publisher_.get());
  broker->delivery_admin_service_ =
      std::make_unique<DeliveryAdminServiceImpl>(broker->directory_.get(), broker->outbox_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, *credentials, &broker->port_);
  // A second broker on the same port must fail to start, not share the traffic.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_receive_message_bytes));
  builder.RegisterService(broker->consent_service_.get());
  builder.RegisterService(broker->exchange_service_.get());
  builder.RegisterService(broker->transparency_service_.get());
  builder.RegisterService(broker->notification_service_.get());
  builder.RegisterService(broker->delivery_admin_service_.get());
  broker->server_ = builder.BuildAndStart();
  if (broker->server_ == nullptr || broker->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("listen_address: cannot listen on ", options.listen_address));
  }
  ops::LogInfo(
      absl::StrCat("serving ConsentService, ExchangeService, TransparencyService, "
                   "NotificationService and DeliveryAdminService on ",
                   options.listen_address, " (port ", broker->port_, "), trust domain ",
                   trust_domain, ", data in ", options.data_dir));
  return broker;
}

Broker::~Broker() { Shutdown(); }

absl::Status Broker::ReloadDirectory() {
  absl::StatusOr<std::shared_ptr<const consent::Directory>> next =
      consent::Directory::LoadFile(options_.directory_file);
  if (!next.ok()) return next.status();
  if ((*next)->trust_domain() != directory_->Current()->trust_domain()) {
    return absl::FailedPreconditionError(
        absl::StrCat(options_.directory_file, ": trust_domain: cannot change while running"));
  }
  directory_->Replace(*std::move(next));
  return absl::OkStatus();
}

void Broker::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      absl::ToChronoSeconds(options_.shutdown_grace));
    server_->Wait();
  }
  server_.reset();
  if (exchange_ != nullptr) {
    const ExchangeCounters& c = exchange_->counters();
    ops::LogInfo(absl::StrCat(
        "exchange: ", c.requests.load(), " requests, ", c.attributes_delivered.load(),
        " attributes delivered, ", c.attributes_refused.load(), " refused, ",
        c.provider_answers_rejected.load(), " provider answers rejected, ",
        c.provider_calls_failed.load(), " provider calls failed, ", c.refused_busy.load(),
        " refused as busy; ", connectors_->counters().fetches.load(), " fetches in ",
        connectors_->counters().calls.load(), " connector calls"));
  }
  if (queue_ != nullptr) {
    const consent::CommitQueue::Counters& c = queue_->counters();
    ops::LogInfo(absl::StrCat("commit queue: ", c.operations.load(), " operations in ", c.groups.load(),
                         " groups, ", c.writes.load(), " writes"));
  }
  exchange_service_.reset();
  exchange_.reset();
  notification_service_.reset();
  delivery_admin_service_.reset();
  publisher_.reset();
  // Commits and completes everything still queued, while the outbox, the access log
  // and the transparency log that completions call into are still there.
  queue_.reset();
  outbox_.reset();
  connectors_.reset();
  transparency_service_.reset();
  transparency_.reset();
  access_log_.reset();
  consent_service_.reset();
  registry_.reset();
  store_.reset();
  db_.reset();
}

}  // namespace tellonce::broker
