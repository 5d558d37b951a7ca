#ifndef TELLONCE_BROKER_ADMIN_SERVICE_H_
#define TELLONCE_BROKER_ADMIN_SERVICE_H_

#include <functional>

#include "absl/time/time.h"
#include "broker/access_log.h"
#include "broker/outbox.h"
#include "broker/transparency.h"
#include "consent/directory.h"
#include "tellonce/v1/admin.grpc.pb.h"

namespace tellonce::broker {

// What the broker knows about itself, gathered when asked (broker.cc assembles it from
// its parts). Must be cheap (point reads and counters) and thread-safe.
using BrokerStatusSource = std::function<tellonce::v1::BrokerStatus()>;

// Makes an online backup (BackupMaker::Run); may take long (it runs on a thread of its
// own, not gRPC's). Thread-safe.
using BackupRunner = std::function<absl::StatusOr<tellonce::v1::BackupResponse>()>;

// The broker's status source: version, `started` and uptime, the access log's size and
// hashed size, the last signed checkpoint, the outbox's pending and dead counts; then
// `fill_more` (for parts that live elsewhere: TLS expiry, the reasons /readyz gives);
// `ready` is true when no reason was added.
// None of the pointers is owned; all must outlive the source.
BrokerStatusSource MakeBrokerStatusSource(
    absl::Time started, const AccessLog* log, const TransparencyLog* tree, Outbox* outbox,
    std::function<void(tellonce::v1::BrokerStatus*)> fill_more);

// AdminService over gRPC's callback API: admin role (from the peer certificate), then
// the status source. Thin, like ExchangeServiceImpl.
class AdminServiceImpl final : public tellonce::v1::AdminService::CallbackService {
 public:
  // `directory` is not owned and must outlive the service.
  AdminServiceImpl(const consent::DirectoryHolder* directory, BrokerStatusSource status,
                   BackupRunner backup = nullptr)
      : directory_(directory), status_(std::move(status)), backup_(std::move(backup)) {}

  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const tellonce::v1::GetStatusRequest* request,
                                      tellonce::v1::BrokerStatus* response) override;
  // Admin role, then the backup runner on a thread of its own (the server's shutdown
  // waits for it to finish the call).
  grpc::ServerUnaryReactor* Backup(grpc::CallbackServerContext* context,
                                   const tellonce::v1::BackupRequest* request,
                                   tellonce::v1::BackupResponse* response) override;

 private:
  const consent::DirectoryHolder* directory_;
  BrokerStatusSource status_;
  BackupRunner backup_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_ADMIN_SERVICE_H_
