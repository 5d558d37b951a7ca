#include "broker/transparency_service.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/authz.h"
#include "broker/status.h"
#include "proto/time.h"

namespace tellonce::broker {
namespace {

constexpr char kService[] = "TransparencyService";

absl::StatusOr<absl::Time> TimeField(const google::protobuf::Timestamp& t, bool set,
                                     absl::Time unset, const char* field) {
  if (!set) return unset;
  return CheckedFromProtoTime(t, field);
}

}  // namespace

absl::StatusOr<AccessEventsQuery> ValidateListAccessEvents(
    const tellonce::v1::ListAccessEventsRequest& request, const consent::Directory& directory,
    const consent::RequestLimits& limits) {
  if (absl::Status s = consent::CheckCitizen(request.citizen_id(), directory, limits); !s.ok()) {
    return s;
  }
  if (request.page_size() < 0 || request.page_size() > 500) {
    return absl::InvalidArgumentError("page_size: must be between 0 and 500");
  }
  AccessEventsQuery query;
  query.page_size = request.page_size();
  absl::StatusOr<absl::Time> from =
      TimeField(request.from(), request.has_from(), absl::InfinitePast(), "from");
  if (!from.ok()) return from.status();
  absl::StatusOr<absl::Time> to =
      TimeField(request.to(), request.has_to(), absl::InfiniteFuture(), "to");
  if (!to.ok()) return to.status();
  if (*from > *to) return absl::InvalidArgumentError("to: must not be before from");
  if (request.page_token().size() > 20) {
    return absl::InvalidArgumentError("page_token: malformed");
  }
  query.from = *from;
  query.to = *to;
  return query;
}

grpc::ServerUnaryReactor* TransparencyServiceImpl::ListAccessEvents(
    grpc::CallbackServerContext* context, const tellonce::v1::ListAccessEventsRequest* request,
    tellonce::v1::ListAccessEventsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const consent::Directory> directory = directory_->Current();
  auto run = [&]() -> absl::StatusOr<tellonce::v1::ListAccessEventsResponse> {
    absl::StatusOr<std::string> agency = AuthenticateAgency(*context, *directory, kService);
    if (!agency.ok()) return agency.status();
    // A portal acts for the citizen and sees everything about them; a consumer sees
    // only what it caused itself.
    std::optional<std::string> only_consumer;
    if (!directory->HasRole(*agency, tellonce::v1::PORTAL)) {
      if (!directory->HasRole(*agency, tellonce::v1::CONSUMER)) {
        return absl::PermissionDeniedError(
            "ListAccessEvents requires the portal or the consumer role");
      }
      only_consumer = *agency;
    }
    if (absl::Status s = consent::CheckCitizen(request->citizen_id(), *directory, limits_);
        !s.ok()) {
      return s;
    }
    if (!only_consumer.has_value()) {
      // A portal sees everything about the citizen: only with the citizen's own fresh
      // authentication.
      absl::StatusOr<certs::VerifiedCitizenAssertion> citizen =
          directory->VerifyCitizenAssertion(*agency, CitizenAssertion(*context),
                                            request->citizen_id(), absl::Now());
      if (!citizen.ok()) return citizen.status();
    }
    absl::StatusOr<AccessEventsQuery> query =
        ValidateListAccessEvents(*request, *directory, limits_);
    if (!query.ok()) return query.status();
    return log_->List(request->citizen_id(), only_consumer, query->from, query->to,
                      query->page_size, request->page_token());
  };
  FinishWith(reactor, response, run());
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
  auto finish = [reactor, response](absl::StatusOr<tellonce::v1::SignedCheckpoint> c) {
    if (c.ok()) *response->mutable_checkpoint() = *std::move(c);
    reactor->Finish(ToGrpcStatus(c.status()));
  };
  if (request->fresh()) {
    if (fresh_limit_ != nullptr) {
      if (absl::Status admitted = fresh_limit_->Admit(*agency); !admitted.ok()) {
        reactor->Finish(ToGrpcStatus(admitted));
        return reactor;
      }
    }
    log_->FreshCheckpoint(std::move(finish));
  } else {
    finish(log_->LatestCheckpoint());
  }
  return reactor;
}

grpc::ServerUnaryReactor* TransparencyServiceImpl::GetInclusionProof(
    grpc::CallbackServerContext* context, const tellonce::v1::GetInclusionProofRequest* request,
    tellonce::v1::GetInclusionProofResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const consent::Directory> directory = directory_->Current();
  auto run = [&]() -> absl::StatusOr<tellonce::v1::GetInclusionProofResponse> {
    absl::StatusOr<std::string> agency = AuthenticateAgency(*context, *directory, kService);
    if (!agency.ok()) return agency.status();
    const bool sees_all = directory->HasRole(*agency, tellonce::v1::PORTAL) ||
                          directory->HasRole(*agency, tellonce::v1::ADMIN);
    if (!sees_all && !directory->HasRole(*agency, tellonce::v1::CONSUMER)) {
      return absl::PermissionDeniedError(
          "GetInclusionProof requires the portal, admin or consumer role");
    }
    absl::StatusOr<tellonce::v1::GetInclusionProofResponse> proof =
        log_->InclusionProof(request->index(), request->tree_size());
    if (!proof.ok()) return proof.status();
    if (!sees_all) {
      tellonce::v1::AccessEvent event;
      if (!event.ParseFromString(proof->event_bytes()) || event.consumer() != *agency) {
        // The same answer whether or not the event exists: nothing leaks.
        return absl::PermissionDeniedError("a consumer may only prove the events it caused");
      }
    }
    return proof;
  };
  FinishWith(reactor, response, run());
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
  FinishWith(reactor, response, log_->ConsistencyProof(request->old_size(), request->new_size()));
  return reactor;
}

grpc::ServerUnaryReactor* TransparencyServiceImpl::ExportAccessLog(
    grpc::CallbackServerContext* context, const tellonce::v1::ExportAccessLogRequest* request,
    tellonce::v1::ExportAccessLogResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> admin =
      AuthorizeAgency(*context, *directory_->Current(), tellonce::v1::ADMIN, "ExportAccessLog");
  if (!admin.ok()) {
    reactor->Finish(ToGrpcStatus(admin.status()));
    return reactor;
  }
  FinishWith(reactor, response,
             log_->Export(request->start(), request->max_events(), request->max_bytes()));
  return reactor;
}

grpc::ServerUnaryReactor* TransparencyServiceImpl::ExportCheckpoints(
    grpc::CallbackServerContext* context, const tellonce::v1::ExportCheckpointsRequest* request,
    tellonce::v1::ExportCheckpointsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> admin =
      AuthorizeAgency(*context, *directory_->Current(), tellonce::v1::ADMIN, "ExportCheckpoints");
  if (!admin.ok()) {
    reactor->Finish(ToGrpcStatus(admin.status()));
    return reactor;
  }
  FinishWith(reactor, response,
             log_->ExportCheckpoints(request->start_size(), request->max_bytes()));
  return reactor;
}

}  // namespace tellonce::broker
