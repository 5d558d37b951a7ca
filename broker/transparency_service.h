#ifndef TELLONCE_BROKER_TRANSPARENCY_SERVICE_H_
#define TELLONCE_BROKER_TRANSPARENCY_SERVICE_H_

#include "broker/rate_limiter.h"
#include "broker/transparency.h"
#include "broker/transparency_core.h"
#include "consent/directory.h"
#include "consent/validation.h"
#include "tellonce/v1/transparency.grpc.pb.h"

namespace tellonce::broker {

// TransparencyService over gRPC's callback API. Thin, like ExchangeServiceImpl: takes
// the caller's agency id from its certificate (an agency of the directory), hands the
// request to the TransparencyCore, where the role rules and the request checks live, and
// finishes through ToGrpcStatus.
class TransparencyServiceImpl final : public tellonce::v1::TransparencyService::CallbackService {
 public:
  // Not owned; all must outlive the service. `fresh_limit` (optional) admits each
  // agency's requests for a fresh checkpoint.
  TransparencyServiceImpl(const consent::DirectoryHolder* directory, TransparencyLog* log,
                          consent::RequestLimits limits, RateLimiter* fresh_limit = nullptr);

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
      grpc::CallbackServerContext* context, const tellonce::v1::GetConsistencyProofRequest* request,
      tellonce::v1::GetConsistencyProofResponse* response) override;
  grpc::ServerUnaryReactor* ExportAccessLog(
      grpc::CallbackServerContext* context, const tellonce::v1::ExportAccessLogRequest* request,
      tellonce::v1::ExportAccessLogResponse* response) override;
  grpc::ServerUnaryReactor* ExportCheckpoints(
      grpc::CallbackServerContext* context, const tellonce::v1::ExportCheckpointsRequest* request,
      tellonce::v1::ExportCheckpointsResponse* response) override;

 private:
  const consent::DirectoryHolder* directory_;
  TransparencyCore core_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_TRANSPARENCY_SERVICE_H_
