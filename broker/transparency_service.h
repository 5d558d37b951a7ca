#ifndef TELLONCE_BROKER_TRANSPARENCY_SERVICE_H_
#define TELLONCE_BROKER_TRANSPARENCY_SERVICE_H_

#include "broker/rate_limiter.h"
#include "broker/transparency.h"
#include "consent/directory.h"
#include "consent/validation.h"
#include "tellonce/v1/transparency.grpc.pb.h"

namespace tellonce::broker {

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
