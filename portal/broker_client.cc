#include "portal/broker_client.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certs/citizen_assertion.h"
#include "certs/identity.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "proto/textproto.h"

namespace tellonce::portal {
namespace {

constexpr int kPageSize = 500;

}  // namespace

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::StatusOr<std::unique_ptr<BrokerClient>> BrokerClient::Connect(const std::string& address,
                                                                    const certs::TlsPaths& tls,
                                                                    std::string broker_id,
                                                                    absl::Duration timeout) {
  if (broker_id.empty()) {
    absl::StatusOr<std::string> pem = ReadFileToString(tls.cert_file);
    if (!pem.ok()) return pem.status();
    absl::StatusOr<certs::SpiffeId> self = certs::CertificateSpiffeId(*pem);
    if (!self.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("broker_tls.cert_file: ", self.status().message()));
    }
    broker_id = certs::BrokerSpiffeId(self->trust_domain);
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      certs::MakeChannelCredentials(tls, broker_id);
  if (!creds.ok()) return creds.status();
  return std::unique_ptr<BrokerClient>(
      new BrokerClient(grpc::CreateChannel(address, *creds), timeout));
}

BrokerClient::BrokerClient(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
    : consents_(tellonce::v1::ConsentService::NewStub(channel)),
      transparency_(tellonce::v1::TransparencyService::NewStub(channel)),
      timeout_(timeout) {}

namespace {

// A context with the deadline and, for citizen-bound calls, the citizen's ID token.
std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout, const CitizenCredential* who) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  if (who != nullptr) {
    context->AddMetadata(certs::kCitizenAssertionMetadataKey, who->id_token);
  }
  return context;
}

absl::Status NeedsToken(const CitizenCredential& who) {
  if (who.id_token.empty() || who.citizen_id.empty()) {
    return absl::UnauthenticatedError("no signed-in citizen");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<tellonce::v1::Consent>> BrokerClient::ListConsents(
    const CitizenCredential& who) {
  if (absl::Status s = NeedsToken(who); !s.ok()) return s;
  std::vector<tellonce::v1::Consent> out;
  tellonce::v1::ListConsentsRequest request;
  request.set_citizen_id(who.citizen_id);
  request.set_page_size(kPageSize);
  while (out.size() < kMaxItems) {
    tellonce::v1::ListConsentsResponse response;
    auto context = Context(timeout_, &who);
    if (absl::Status s = FromGrpc(consents_->ListConsents(context.get(), request, &response));
        !s.ok()) {
      return s;
    }
    for (tellonce::v1::Consent& c : *response.mutable_consents()) out.push_back(std::move(c));
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  return out;
}

absl::StatusOr<tellonce::v1::GetConsentResponse> BrokerClient::GetConsent(
    const CitizenCredential& who, const std::string& consent_id) {
  if (absl::Status s = NeedsToken(who); !s.ok()) return s;
  tellonce::v1::GetConsentRequest request;
  request.set_citizen_id(who.citizen_id);
  request.set_consent_id(consent_id);
  tellonce::v1::GetConsentResponse response;
  auto context = Context(timeout_, &who);
  if (absl::Status s = FromGrpc(consents_->GetConsent(context.get(), request, &response));
      !s.ok()) {
    return s;
  }
  return response;
}

absl::StatusOr<tellonce::v1::GrantConsentResponse> BrokerClient::GrantConsent(
    const CitizenCredential& who, tellonce::v1::GrantConsentRequest request) {
  if (absl::Status s = NeedsToken(who); !s.ok()) return s;
  request.set_citizen_id(who.citizen_id);
  tellonce::v1::GrantConsentResponse response;
  auto context = Context(timeout_, &who);
  if (absl::Status s = FromGrpc(consents_->GrantConsent(context.get(), request, &response));
      !s.ok()) {
    return s;
  }
  return response;
}

absl::StatusOr<tellonce::v1::Consent> BrokerClient::RevokeConsent(const CitizenCredential& who,
                                                                  const std::string& consent_id,
                                                                  const std::string& reason) {
  if (absl::Status s = NeedsToken(who); !s.ok()) return s;
  tellonce::v1::RevokeConsentRequest request;
  request.set_citizen_id(who.citizen_id);
  request.set_consent_id(consent_id);
  request.set_reason(reason);
  tellonce::v1::RevokeConsentResponse response;
  auto context = Context(timeout_, &who);
  if (absl::Status s = FromGrpc(consents_->RevokeConsent(context.get(), request, &response));
      !s.ok()) {
    return s;
  }
  return std::move(*response.mutable_consent());
}

absl::StatusOr<std::vector<tellonce::v1::LoggedAccessEvent>> BrokerClient::ListAccessEvents(
    const CitizenCredential& who) {
  if (absl::Status s = NeedsToken(who); !s.ok()) return s;
  std::vector<tellonce::v1::LoggedAccessEvent> out;
  tellonce::v1::ListAccessEventsRequest request;
  request.set_citizen_id(who.citizen_id);
  request.set_page_size(kPageSize);
  while (out.size() < kMaxItems) {
    tellonce::v1::ListAccessEventsResponse response;
    auto context = Context(timeout_, &who);
    if (absl::Status s =
            FromGrpc(transparency_->ListAccessEvents(context.get(), request, &response));
        !s.ok()) {
      return s;
    }
    for (auto& e : *response.mutable_events()) out.push_back(std::move(e));
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  return out;
}

absl::StatusOr<tellonce::v1::SignedCheckpoint> BrokerClient::GetCheckpoint(bool fresh) {
  tellonce::v1::GetCheckpointRequest request;
  request.set_fresh(fresh);
  tellonce::v1::GetCheckpointResponse response;
  auto context = Context(timeout_, nullptr);
  if (absl::Status s = FromGrpc(transparency_->GetCheckpoint(context.get(), request, &response));
      !s.ok()) {
    return s;
  }
  return std::move(*response.mutable_checkpoint());
}

absl::StatusOr<tellonce::v1::GetInclusionProofResponse> BrokerClient::GetInclusionProof(
    uint64_t index, uint64_t tree_size) {
  tellonce::v1::GetInclusionProofRequest request;
  request.set_index(index);
  request.set_tree_size(tree_size);
  tellonce::v1::GetInclusionProofResponse response;
  auto context = Context(timeout_, nullptr);
  if (absl::Status s =
          FromGrpc(transparency_->GetInclusionProof(context.get(), request, &response));
      !s.ok()) {
    return s;
  }
  return response;
}

}  // namespace tellonce::portal
