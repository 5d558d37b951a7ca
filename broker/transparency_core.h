#ifndef TELLONCE_BROKER_TRANSPARENCY_CORE_H_
#define TELLONCE_BROKER_TRANSPARENCY_CORE_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "broker/rate_limiter.h"
#include "broker/transparency.h"
#include "consent/directory.h"
#include "consent/validation.h"
#include "tellonce/v1/transparency.pb.h"

namespace tellonce::broker {

// A ListAccessEvents request once its fields are checked.
struct AccessEventsQuery {
  // [from, to): open ends are InfinitePast / InfiniteFuture.
  absl::Time from = absl::InfinitePast();
  absl::Time to = absl::InfiniteFuture();
  int page_size = 0;
};

// The request checks of TransparencyCore::ListAccessEvents, apart from the role and the
// citizen's token: citizen_id (directory rule), the page rule (consent::CheckPageRequest,
// a position token), from and to valid timestamps when set and from <= to.
// INVALID_ARGUMENT "<field>: <reason>", never echoing the citizen id. Pure; the
// untrusted-input boundary tests/fuzz/transparency_request_fuzz.cc and page_token_fuzz.cc
// drive.
absl::StatusOr<AccessEventsQuery> ValidateListAccessEvents(
    const tellonce::v1::ListAccessEventsRequest& request, const consent::Directory& directory,
    const consent::RequestLimits& limits);

// Design: the policy behind TransparencyService, apart from gRPC, so that another face
// (the portal's HTTP API, a second storage backend) applies the same rules. The service
// authenticates the caller from its certificate (an agency of the directory) and hands
// over its id, the directory snapshot it authenticated against, and the citizen's ID
// token when the call carried one; this class decides who may see what, checks the
// request, and asks the TransparencyLog:
//   - ListAccessEvents: a portal sees everything about a citizen, but only with that
//     citizen's fresh ID token; a consumer sees only the events it caused, no token
//     needed; any other agency is refused. One page check for every list
//     (consent::CheckPageRequest, limits.max_page_size).
//   - GetInclusionProof: portal and admin for any event; a consumer only for an event it
//     caused (the same refusal whether or not the event exists).
//   - GetCheckpoint, GetConsistencyProof: any agency of the federation; a fresh
//     checkpoint is admitted by the per-agency rate limit.
//   - ExportAccessLog, ExportCheckpoints: the admin role.
// Errors are absl::Status with client-facing messages ("<field>: <reason>", or the
// service and the role required). Thread-safe: the class holds no mutable state of its
// own, and the log and the rate limiter are thread-safe.
class TransparencyCore {
 public:
  struct Options {
    // String and page limits (BrokerConfig.limits).
    consent::RequestLimits limits;
    // Admits each agency's requests for a fresh checkpoint; null: no limit.
    RateLimiter* fresh_limit = nullptr;
    // Source of the current time (citizen-token age); tests inject a fake clock.
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };

  // `log` and `options.fresh_limit` are not owned and must outlive the core.
  TransparencyCore(TransparencyLog* log, Options options)
      : log_(log), options_(std::move(options)) {}

  // The access events about request.citizen_id that `agency` may see, one page, oldest
  // first. PERMISSION_DENIED for an agency that is neither portal nor consumer;
  // INVALID_ARGUMENT for a citizen id the directory refuses, a bad page request, a
  // malformed time or `to` before `from`; for a portal, the errors of
  // Directory::VerifyCitizenAssertion when `citizen_assertion` does not prove the
  // citizen. The log's storage errors otherwise.
  absl::StatusOr<tellonce::v1::ListAccessEventsResponse> ListAccessEvents(
      const consent::Directory& directory, const std::string& agency,
      std::string_view citizen_assertion, const tellonce::v1::ListAccessEventsRequest& request);

  // The latest signed checkpoint, or with request.fresh one that covers every event
  // durable now (RESOURCE_EXHAUSTED when `agency` is over its fresh-checkpoint rate).
  // `done` runs on this thread or, for a fresh one, on the log's signing thread.
  void GetCheckpoint(const std::string& agency, const tellonce::v1::GetCheckpointRequest& request,
                     TransparencyLog::CheckpointDone done);

  // An inclusion proof of request.index in the tree of request.tree_size, with the
  // event's bytes. PERMISSION_DENIED for an agency without the portal, admin or consumer
  // role, and for a consumer asking about an event it did not cause; the log's errors
  // (INVALID_ARGUMENT for an index or size out of range) otherwise.
  absl::StatusOr<tellonce::v1::GetInclusionProofResponse> GetInclusionProof(
      const consent::Directory& directory, const std::string& agency,
      const tellonce::v1::GetInclusionProofRequest& request);

  // A consistency proof between two tree sizes; the log's errors.
  absl::StatusOr<tellonce::v1::GetConsistencyProofResponse> GetConsistencyProof(
      const tellonce::v1::GetConsistencyProofRequest& request);

  // A page of the raw log, and of the stored checkpoints, for an admin
  // (PERMISSION_DENIED "ExportAccessLog requires the admin role" otherwise).
  absl::StatusOr<tellonce::v1::ExportAccessLogResponse> ExportAccessLog(
      const consent::Directory& directory, const std::string& agency,
      const tellonce::v1::ExportAccessLogRequest& request);
  absl::StatusOr<tellonce::v1::ExportCheckpointsResponse> ExportCheckpoints(
      const consent::Directory& directory, const std::string& agency,
      const tellonce::v1::ExportCheckpointsRequest& request);

 private:
  TransparencyLog* const log_;
  const Options options_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_TRANSPARENCY_CORE_H_
