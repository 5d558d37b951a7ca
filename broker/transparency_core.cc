#include "broker/transparency_core.h"

#include <optional>
#include <utility>

#include "broker/authz.h"
#include "proto/time.h"

namespace tellonce::broker {
namespace {

// An optional bound of a time range: `unset` when absent, else a valid timestamp.
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
  if (absl::Status s = consent::CheckPageRequest(request.page_size(), request.page_token(),
                                                 consent::PageTokenForm::kPosition, limits);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<absl::Time> from =
      TimeField(request.from(), request.has_from(), absl::InfinitePast(), "from");
  if (!from.ok()) return from.status();
  absl::StatusOr<absl::Time> to =
      TimeField(request.to(), request.has_to(), absl::InfiniteFuture(), "to");
  if (!to.ok()) return to.status();
  if (*from > *to) return absl::InvalidArgumentError("to: must not be before from");
  return AccessEventsQuery{.from = *from, .to = *to, .page_size = request.page_size()};
}

absl::StatusOr<tellonce::v1::ListAccessEventsResponse> TransparencyCore::ListAccessEvents(
    const consent::Directory& directory, const std::string& agency,
    std::string_view citizen_assertion, const tellonce::v1::ListAccessEventsRequest& request) {
  // A portal acts for the citizen and sees everything about them; a consumer sees only
  // what it caused itself.
  std::optional<std::string> only_consumer;
  if (!directory.HasRole(agency, tellonce::v1::PORTAL)) {
    if (!directory.HasRole(agency, tellonce::v1::CONSUMER)) {
      return absl::PermissionDeniedError(
          "ListAccessEvents requires the portal or the consumer role");
    }
    only_consumer = agency;
  }
  absl::StatusOr<AccessEventsQuery> query =
      ValidateListAccessEvents(request, directory, options_.limits);
  if (!query.ok()) return query.status();
  if (!only_consumer.has_value()) {
    // Everything about the citizen: only with the citizen's own fresh authentication.
    absl::StatusOr<certs::VerifiedCitizenAssertion> citizen = directory.VerifyCitizenAssertion(
        agency, citizen_assertion, request.citizen_id(), options_.clock());
    if (!citizen.ok()) return citizen.status();
  }
  return log_->List(request.citizen_id(), only_consumer, query->from, query->to, query->page_size,
                    request.page_token());
}

void TransparencyCore::GetCheckpoint(const std::string& agency,
                                     const tellonce::v1::GetCheckpointRequest& request,
                                     TransparencyLog::CheckpointDone done) {
  if (!request.fresh()) {
    done(log_->LatestCheckpoint());
    return;
  }
  if (options_.fresh_limit != nullptr) {
    if (absl::Status admitted = options_.fresh_limit->Admit(agency); !admitted.ok()) {
      done(admitted);
      return;
    }
  }
  log_->FreshCheckpoint(std::move(done));
}

absl::StatusOr<tellonce::v1::GetInclusionProofResponse> TransparencyCore::GetInclusionProof(
    const consent::Directory& directory, const std::string& agency,
    const tellonce::v1::GetInclusionProofRequest& request) {
  const bool sees_all = directory.HasRole(agency, tellonce::v1::PORTAL) ||
                        directory.HasRole(agency, tellonce::v1::ADMIN);
  if (!sees_all && !directory.HasRole(agency, tellonce::v1::CONSUMER)) {
    return absl::PermissionDeniedError(
        "GetInclusionProof requires the portal, admin or consumer role");
  }
  absl::StatusOr<tellonce::v1::GetInclusionProofResponse> proof =
      log_->InclusionProof(request.index(), request.tree_size());
  if (!proof.ok()) return proof.status();
  if (!sees_all) {
    tellonce::v1::AccessEvent event;
    if (!event.ParseFromString(proof->event_bytes()) || event.consumer() != agency) {
      // The same answer whether or not the event exists: nothing leaks.
      return absl::PermissionDeniedError("a consumer may only prove the events it caused");
    }
  }
  return proof;
}

absl::StatusOr<tellonce::v1::GetConsistencyProofResponse> TransparencyCore::GetConsistencyProof(
    const tellonce::v1::GetConsistencyProofRequest& request) {
  return log_->ConsistencyProof(request.old_size(), request.new_size());
}

absl::StatusOr<tellonce::v1::ExportAccessLogResponse> TransparencyCore::ExportAccessLog(
    const consent::Directory& directory, const std::string& agency,
    const tellonce::v1::ExportAccessLogRequest& request) {
  if (absl::Status s = RequireRole(directory, agency, tellonce::v1::ADMIN, "ExportAccessLog");
      !s.ok()) {
    return s;
  }
  return log_->Export(request.start(), request.max_events(), request.max_bytes());
}

absl::StatusOr<tellonce::v1::ExportCheckpointsResponse> TransparencyCore::ExportCheckpoints(
    const consent::Directory& directory, const std::string& agency,
    const tellonce::v1::ExportCheckpointsRequest& request) {
  if (absl::Status s = RequireRole(directory, agency, tellonce::v1::ADMIN, "ExportCheckpoints");
      !s.ok()) {
    return s;
  }
  return log_->ExportCheckpoints(request.start_size(), request.max_bytes());
}

}  // namespace tellonce::broker
