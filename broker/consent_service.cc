#include "broker/consent_service.h"

#include <utility>

#include "broker/authz.h"
#include "proto/grpc_status.h"

namespace tellonce::broker {
namespace {}  // namespace

absl::StatusOr<std::string> ConsentServiceImpl::AuthorizePortal(
    const grpc::CallbackServerContext& context) const {
  return AuthorizeAgency(context, *directory_->Current(), tellonce::v1::PORTAL, "ConsentService");
}

grpc::ServerUnaryReactor* ConsentServiceImpl::GrantConsent(
    grpc::CallbackServerContext* context, const tellonce::v1::GrantConsentRequest* request,
    tellonce::v1::GrantConsentResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> portal = AuthorizePortal(*context);
  if (!portal.ok()) {
    reactor->Finish(ToGrpcStatus(portal.status()));
    return reactor;
  }
  if (grant_limit_ != nullptr) {
    if (absl::Status admitted = grant_limit_->Admit(*portal); !admitted.ok()) {
      reactor->Finish(ToGrpcStatus(admitted));
      return reactor;
    }
  }
  registry_->Grant(*portal, CitizenAssertion(*context), *request,
                   [reactor, response](absl::StatusOr<tellonce::v1::GrantConsentResponse> r) {
                     FinishWith(reactor, response, std::move(r));
                   });
  return reactor;
}

grpc::ServerUnaryReactor* ConsentServiceImpl::RevokeConsent(
    grpc::CallbackServerContext* context, const tellonce::v1::RevokeConsentRequest* request,
    tellonce::v1::RevokeConsentResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> portal = AuthorizePortal(*context);
  if (!portal.ok()) {
    reactor->Finish(ToGrpcStatus(portal.status()));
    return reactor;
  }
  registry_->Revoke(*portal, CitizenAssertion(*context), *request,
                    [reactor, response](absl::StatusOr<tellonce::v1::RevokeConsentResponse> r) {
                      FinishWith(reactor, response, std::move(r));
                    });
  return reactor;
}

grpc::ServerUnaryReactor* ConsentServiceImpl::GetConsent(
    grpc::CallbackServerContext* context, const tellonce::v1::GetConsentRequest* request,
    tellonce::v1::GetConsentResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> portal = AuthorizePortal(*context);
  if (!portal.ok()) {
    reactor->Finish(ToGrpcStatus(portal.status()));
    return reactor;
  }
  FinishWith(reactor, response, registry_->Get(*portal, CitizenAssertion(*context), *request));
  return reactor;
}

grpc::ServerUnaryReactor* ConsentServiceImpl::ListConsents(
    grpc::CallbackServerContext* context, const tellonce::v1::ListConsentsRequest* request,
    tellonce::v1::ListConsentsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> portal = AuthorizePortal(*context);
  if (!portal.ok()) {
    reactor->Finish(ToGrpcStatus(portal.status()));
    return reactor;
  }
  FinishWith(reactor, response, registry_->List(*portal, CitizenAssertion(*context), *request));
  return reactor;
}

}  // namespace tellonce::broker
