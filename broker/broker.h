#ifndef TELLONCE_BROKER_BROKER_H_
#define TELLONCE_BROKER_BROKER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/access_log.h"
#include "broker/admin_service.h"
#include "broker/backup.h"
#include "broker/checkpoint_guard.h"
#include "broker/config.h"
#include "broker/connector_pool.h"
#include "broker/consent_service.h"
#include "broker/exchange.h"
#include "broker/exchange_service.h"
#include "broker/notification_service.h"
#include "broker/outbox.h"
#include "broker/publisher.h"
#include "broker/rate_limiter.h"
#include "broker/transparency.h"
#include "broker/transparency_service.h"
#include "certs/tls_watch.h"
#include "consent/consent_store.h"
#include "consent/directory.h"
#include "consent/registry.h"
#include "grpcpp/server.h"
#include "ops/admin_server.h"
#include "ops/metrics.h"
#include "ops/rpc_metrics.h"
#include "storage/storage.h"

namespace tellonce::broker {

// Design: the running broker process, assembled from its parts in dependency order
// (directory, TLS, database, commit queue, consent store, registry, access log,
// connector pool, exchange core, gRPC services) and
// taken apart in reverse. Start fails, without serving anything, on any configuration
// problem: unreadable or invalid directory, TLS files that do not load, a data
// directory that cannot be opened, an address that cannot be bound.
class Broker {
 public:
  static absl::StatusOr<std::unique_ptr<Broker>> Start(const BrokerOptions& options);
  ~Broker();

  // The port actually bound (useful with port 0).
  int port() const { return port_; }
  // The admin listener's port; 0 when it is off.
  int admin_port() const { return admin_ == nullptr ? 0 : admin_->port(); }

  // Why the broker should not get traffic now (empty when ready): a directory file
  // that failed to load, a database in a failed state. What /readyz reports.
  // Thread-safe.
  std::vector<std::string> NotReadyReasons() const ABSL_LOCKS_EXCLUDED(mu_);

  // The metrics /metrics serves.
  const ops::MetricsRegistry& metrics() const { return *metrics_; }

  // Re-reads the directory file. On error the current directory stays in force, the
  // error is returned, and the broker reports itself not ready until a reload succeeds
  // (the file on disk is not the policy in force: a removed mandate or role would
  // still be honoured). Thread-safe.
  absl::Status ReloadDirectory() ABSL_LOCKS_EXCLUDED(mu_);
  // Re-reads the TLS files now (SIGHUP); they are also re-read every
  // options.tls_watch.poll_interval. OK when accepted or unchanged; otherwise the
  // refusal naming the file, and the material in use stays. Thread-safe.
  absl::Status ReloadTls() { return tls_->Reload(); }

  // The TLS material in use (expiry, CRL next update, usable or why not, reload
  // counts), for /readyz, metrics and admin status. Thread-safe.
  certs::TlsStatus tls_status() const { return tls_->status(); }

  // Stops accepting calls, lets in-flight calls finish for up to the grace period,
  // commits everything queued and closes the database. Idempotent.
  void Shutdown();

 private:
  explicit Broker(BrokerOptions options) : options_(std::move(options)) {}

  // Gauges and counters read at scrape time from the parts that keep them.
  void AddCollectors();

  BrokerOptions options_;
  const absl::Time started_ = absl::Now();
  std::unique_ptr<ops::MetricsRegistry> metrics_ = std::make_unique<ops::MetricsRegistry>();
  std::unique_ptr<ops::RpcMetrics> rpc_metrics_;
  mutable absl::Mutex mu_;
  // The last directory reload's error; OK after a successful one.
  absl::Status directory_error_ ABSL_GUARDED_BY(mu_);
  ops::Counter* directory_reloads_ok_ = nullptr;
  ops::Counter* directory_reloads_failed_ = nullptr;
  std::unique_ptr<consent::DirectoryHolder> directory_;
  // Outlives the server and the connector pool, whose credentials read it.
  std::unique_ptr<certs::TlsMaterialWatcher> tls_;
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<consent::ConsentStore> store_;
  std::unique_ptr<consent::ConsentRegistry> registry_;
  // Per-agency token buckets (options.rate_limits); outlive the services that use them.
  std::unique_ptr<RateLimiter> publish_limit_;
  std::unique_ptr<RateLimiter> grant_limit_;
  std::unique_ptr<RateLimiter> fresh_checkpoint_limit_;
  std::unique_ptr<ConsentServiceImpl> consent_service_;
  std::unique_ptr<AccessLog> access_log_;
  // The rollback guard (outlives the transparency log, which calls it) and backups.
  std::unique_ptr<CheckpointGuard> checkpoint_guard_;
  std::unique_ptr<BackupMaker> backups_;
  std::unique_ptr<TransparencyLog> transparency_;
  std::unique_ptr<TransparencyServiceImpl> transparency_service_;
  std::unique_ptr<Outbox> outbox_;
  std::unique_ptr<ChangePublisher> publisher_;
  std::unique_ptr<NotificationServiceImpl> notification_service_;
  std::unique_ptr<DeliveryAdminServiceImpl> delivery_admin_service_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<ConnectorPool> connectors_;
  std::unique_ptr<Exchange> exchange_;
  std::unique_ptr<ExchangeServiceImpl> exchange_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ops::AdminServer> admin_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_BROKER_H_
