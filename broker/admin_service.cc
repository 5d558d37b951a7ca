#include "broker/admin_service.h"

#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/authz.h"
#include "ops/version.h"
#include "proto/grpc_status.h"
#include "proto/time.h"

namespace tellonce::broker {

BrokerStatusSource MakeBrokerStatusSource(
    absl::Time started, const AccessLog* log, const TransparencyLog* tree, Outbox* outbox,
    std::function<void(tellonce::v1::BrokerStatus*)> fill_more) {
  return [=] {
    const absl::Time now = absl::Now();
    tellonce::v1::BrokerStatus s;
    s.set_version(ops::kVersion);
    *s.mutable_started_at() = ToProtoTime(started);
    s.set_uptime_seconds(absl::ToInt64Seconds(now - started));
    if (absl::StatusOr<uint64_t> size = log->Size(); size.ok()) {
      s.set_access_log_size(*size);
    } else {
      s.add_not_ready_reasons(absl::StrCat("access log: ", size.status().message()));
    }
    s.set_access_log_hashed(tree->tree_size());
    if (std::optional<tellonce::v1::SignedCheckpoint> cp = tree->LastSigned(); cp.has_value()) {
      tellonce::v1::Checkpoint body;
      if (body.ParseFromString(cp->body())) {
        *s.mutable_last_checkpoint_at() = body.signed_at();
        s.set_last_checkpoint_size(body.tree_size());
      }
    }
    s.set_deliveries_pending(outbox->pending());
    s.set_deliveries_dead(outbox->dead());
    if (fill_more) fill_more(&s);
    s.set_ready(s.not_ready_reasons().empty());
    return s;
  };
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetStatus(grpc::CallbackServerContext* context,
                                                      const tellonce::v1::GetStatusRequest*,
                                                      tellonce::v1::BrokerStatus* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> admin =
      AuthorizeAgency(*context, *directory_->Current(), tellonce::v1::ADMIN, "AdminService");
  if (!admin.ok()) {
    reactor->Finish(ToGrpcStatus(admin.status()));
    return reactor;
  }
  *response = status_();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::Backup(grpc::CallbackServerContext* context,
                                                   const tellonce::v1::BackupRequest*,
                                                   tellonce::v1::BackupResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> admin =
      AuthorizeAgency(*context, *directory_->Current(), tellonce::v1::ADMIN, "AdminService");
  if (!admin.ok()) {
    reactor->Finish(ToGrpcStatus(admin.status()));
    return reactor;
  }
  if (!backup_) {
    reactor->Finish(ToGrpcStatus(absl::UnimplementedError("backups are not wired in")));
    return reactor;
  }
  std::thread([reactor, response, backup = backup_] {
    absl::StatusOr<tellonce::v1::BackupResponse> made = backup();
    if (made.ok()) *response = *std::move(made);
    reactor->Finish(made.ok() ? grpc::Status::OK : ToGrpcStatus(made.status()));
  }).detach();
  return reactor;
}

}  // namespace tellonce::broker
