#ifndef TELLONCE_BROKER_TRANSPARENCY_SERVICE_H_
#define TELLONCE_BROKER_TRANSPARENCY_SERVICE_H_

#include "broker/rate_limiter.h"
#include "broker/transparency.h"
#include "consent/registry.h"
#include "consent/validation.h"
#include "tellonce/v1/transparency.grpc.pb.h"

namespace tellonce::broker {

// A ListAccessEvents request once its fields are checked.
struct AccessEventsQuery {
  // [from, to): open ends are InfinitePast / InfiniteFuture.
  absl::Time from = absl::InfinitePast();
  absl::Time to = absl::InfiniteFuture();
  int page_size = 0;
};

// Checks the fields of a ListAccessEvents request: citizen_id (directory rule),
// 0 <= page_size <= 500, from and to valid timestamps when set and from <= to,
// page_token at most 20 bytes (the log decodes it). INVALID_ARGUMENT "<field>: <reason>",
// never echoing the citizen id. Pure; fuzzed by tests/fuzz/transparency_request_fuzz.cc.
absl::StatusOr<AccessEventsQuery> ValidateListAccessEvents(
    const tellonce::v1::ListAccessEventsRequest& request, const consent::Directory& directory,
    const consent::RequestLimits& limits);

// TransparencyService over gRPC's callback API. Thin: authenticates the caller from its
// certificate, applies the role rules (portal: any citizen's history; consumer: only
// the events it caused; admin: export; checkpoints and consistency proofs: any agency
// of the federation), validates and delegates to the TransparencyLog.
class TransparencyServiceImpl final : public tellonce::v1::TransparencyService::CallbackService {
 public:
  // Not owned; all must outlive the service. `fresh_limit` (optional) admits each
  // agency's requests for a fresh checkpoint.
  TransparencyServiceImpl(const consent::DirectoryHolder* directory, TransparencyLog* log,
                          consent::RequestLimits limits, RateLimiter* fresh_limit = nullptr)
      : directory_(directory), log_(log), limits_(limits), fresh_limit_(fresh_limit) {}

  grpc::ServerUnaryReactor* ListAccessEvents(
      grpc::CallbackServerContext* context, const tellonce::v1::ListAccessEventsRequest* request,
      tellonce::v1::ListAccessEventsResponse* response) override;
  grpc::ServerUnaryReactor* GetCheckpoint(grpc::CallbackServerContext* context,
                                          const tellonce::v1::GetCheckpointRequest* request,
                                          tellonce::v1::GetCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* GetInclusionProof(
      grpc::CallbackServerContext* context, const tellonce::v1::GetInclusionProofRequest* request,
      tellonce::v1::GetInclusionProofResponse* response) override;
  grpc::ServerUnaryReactor* GetConsistencyProof(
      grpc::CallbackServerContext* context,
      const tellonce::v1::GetConsistencyProofRequest* request,
      tellonce::v1::GetConsistencyProofResponse* response) override;
  grpc::ServerUnaryReactor* ExportAccessLog(
      grpc::CallbackServerContext* context, const tellonce::v1::ExportAccessLogRequest* request,
      tellonce::v1::ExportAccessLogResponse* response) override;
  grpc::ServerUnaryReactor* ExportCheckpoints(
      grpc::CallbackServerContext* context, const tellonce::v1::ExportCheckpointsRequest* request,
      tellonce::v1::ExportCheckpointsResponse* response) override;

 private:
  const consent::DirectoryHolder* directory_;
  TransparencyLog* log_;
  consent::RequestLimits limits_;
  RateLimiter* fresh_limit_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_TRANSPARENCY_SERVICE_H_
