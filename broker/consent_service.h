#ifndef TELLONCE_BROKER_CONSENT_SERVICE_H_
#define TELLONCE_BROKER_CONSENT_SERVICE_H_

#include "broker/rate_limiter.h"
#include "consent/registry.h"
#include "tellonce/v1/consent.grpc.pb.h"

namespace tellonce::broker {

// ConsentService over gRPC's callback API. Thin: authorizes the caller (portal role,
// from its certificate), delegates to the ConsentRegistry and maps the status.
class ConsentServiceImpl final : public tellonce::v1::ConsentService::CallbackService {
 public:
  // Not owned; all must outlive the service. `grant_limit` (optional) admits each
  // portal's GrantConsent calls.
  ConsentServiceImpl(const consent::DirectoryHolder* directory, consent::ConsentRegistry* registry,
                     RateLimiter* grant_limit = nullptr)
      : directory_(directory), registry_(registry), grant_limit_(grant_limit) {}

  grpc::ServerUnaryReactor* GrantConsent(grpc::CallbackServerContext* context,
                                         const tellonce::v1::GrantConsentRequest* request,
                                         tellonce::v1::GrantConsentResponse* response) override;
  grpc::ServerUnaryReactor* RevokeConsent(grpc::CallbackServerContext* context,
                                          const tellonce::v1::RevokeConsentRequest* request,
                                          tellonce::v1::RevokeConsentResponse* response) override;
  grpc::ServerUnaryReactor* GetConsent(grpc::CallbackServerContext* context,
                                       const tellonce::v1::GetConsentRequest* request,
                                       tellonce::v1::GetConsentResponse* response) override;
  grpc::ServerUnaryReactor* ListConsents(grpc::CallbackServerContext* context,
                                         const tellonce::v1::ListConsentsRequest* request,
                                         tellonce::v1::ListConsentsResponse* response) override;

 private:
  absl::StatusOr<std::string> AuthorizePortal(const grpc::CallbackServerContext& context) const;

  const consent::DirectoryHolder* directory_;
  consent::ConsentRegistry* registry_;
  RateLimiter* grant_limit_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_CONSENT_SERVICE_H_
