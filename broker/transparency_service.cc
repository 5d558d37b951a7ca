#include "broker/transparency_service.h"

#include <utility>

#include "broker/authz.h"
#include "proto/grpc_status.h"

namespace tellonce::broker {
namespace {

constexpr char kService[] = "TransparencyService";

}  // namespace

TransparencyServiceImpl::TransparencyServiceImpl(const consent::DirectoryHolder* directory,
                                                 TransparencyLog* log,
                                                 consent::RequestLimits limits,
                                                 RateLimiter* fresh_limit)
    : directory_(directory),
      core_(log, TransparencyCore::Options{.limits = limits, .fresh_limit = fresh_limit}) {}

grpc::ServerUnaryReactor* TransparencyServiceImpl::ListAccessEvents(
    grpc::CallbackServerContext* context, const tellonce::v1::ListAccessEventsRequest* request,
    tellonce::v1::ListAccessEventsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const consent::Directory> directory = directory_->Current();
  absl::StatusOr<std::string> agency = AuthenticateAgency(*context, *directory, kService);
  if (!agency.ok()) {
    reactor->Finish(ToGrpcStatus(agency.status()));
    return reactor;
  }
  FinishWith(reactor, response,
             core_.ListAccessEvents(*directory, *agency, CitizenAssertion(*context), *request));
  return reactor;
}

grpc::ServerUnaryReactor* TransparencyServiceImpl::GetCheckpoint(
    grpc::CallbackServerContext* context, const tellonce::v1::GetCheckpointRequest* request,
    tellonce::v1::GetCheckpointResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> agency =
      AuthenticateAgency(*context, *directory_->Current(), kService);
  if (!agency.ok()) {
    reactor->Finish(ToGrpcStatus(agency.status()));
    return reactor;
  }
  core_.GetCheckpoint(*agency, *request,
                      [reactor, response](absl::StatusOr<tellonce::v1::SignedCheckpoint> c) {
                        if (c.ok()) *response->mutable_checkpoint() = *std::move(c);
                        reactor->Finish(ToGrpcStatus(c.status()));
                      });
  return reactor;
}

grpc::ServerUnaryReactor* TransparencyServiceImpl::GetInclusionProof(
    grpc::CallbackServerContext* context, const tellonce::v1::GetInclusionProofRequest* request,
    tellonce::v1::GetInclusionProofResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const consent::Directory> directory = directory_->Current();
  absl::StatusOr<std::string> agency = AuthenticateAgency(*context, *directory, kService);
  if (!agency.ok()) {
    reactor->Finish(ToGrpcStatus(agency.status()));
    return reactor;
  }
  FinishWith(reactor, response, core_.GetInclusionProof(*directory, *agency, *request));
  return reactor;
}

grpc::ServerUnaryReactor* TransparencyServiceImpl::GetConsistencyProof(
    grpc::CallbackServerContext* context, const tellonce::v1::GetConsistencyProofRequest* request,
    tellonce::v1::GetConsistencyProofResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> agency =
      AuthenticateAgency(*context, *directory_->Current(), kService);
  if (!agency.ok()) {
    reactor->Finish(ToGrpcStatus(agency.status()));
    return reactor;
  }
  FinishWith(reactor, response, core_.GetConsistencyProof(*request));
  return reactor;
}

grpc::ServerUnaryReactor* TransparencyServiceImpl::ExportAccessLog(
    grpc::CallbackServerContext* context, const tellonce::v1::ExportAccessLogRequest* request,
    tellonce::v1::ExportAccessLogResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const consent::Directory> directory = directory_->Current();
  absl::StatusOr<std::string> agency = AuthenticateAgency(*context, *directory, "ExportAccessLog");
  if (!agency.ok()) {
    reactor->Finish(ToGrpcStatus(agency.status()));
    return reactor;
  }
  FinishWith(reactor, response, core_.ExportAccessLog(*directory, *agency, *request));
  return reactor;
}

grpc::ServerUnaryReactor* TransparencyServiceImpl::ExportCheckpoints(
    grpc::CallbackServerContext* context, const tellonce::v1::ExportCheckpointsRequest* request,
    tellonce::v1::ExportCheckpointsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const consent::Directory> directory = directory_->Current();
  absl::StatusOr<std::string> agency =
      AuthenticateAgency(*context, *directory, "ExportCheckpoints");
  if (!agency.ok()) {
    reactor->Finish(ToGrpcStatus(agency.status()));
    return reactor;
  }
  FinishWith(reactor, response, core_.ExportCheckpoints(*directory, *agency, *request));
  return reactor;
}

}  // namespace tellonce::broker
