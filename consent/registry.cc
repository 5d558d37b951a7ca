#include "consent/registry.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "certs/sha256.h"
#include "certs/signed_messages.h"
#include "google/protobuf/timestamp.pb.h"
#include "proto/serialize.h"
#include "proto/time.h"

namespace tellonce::consent {
namespace {

using tellonce::v1::Consent;
using tellonce::v1::ConsentEvent;
using tellonce::v1::ConsentReceipt;
using tellonce::v1::ReceiptBody;

constexpr char kReceiptVersion[] = "tellonce-receipt/1";

absl::Status CheckPortal(const Directory& directory, const std::string& portal_id) {
  if (!directory.HasRole(portal_id, tellonce::v1::PORTAL)) {
    return absl::PermissionDeniedError("caller: not an agency with the portal role");
  }
  return absl::OkStatus();
}

}  // namespace

ReceiptBody BuildReceiptBody(const Consent& consent, const Directory& directory,
                             const std::string& issuer, absl::Time issued_at) {
  ReceiptBody body;
  body.set_version(kReceiptVersion);
  body.set_record_id(consent.consent_id());
  *body.mutable_issued_at() = ToProtoTime(issued_at);
  body.set_issuer(issuer);
  body.set_jurisdiction(directory.trust_domain());
  body.set_principal_id(consent.citizen_id());
  body.set_controller(consent.consumer());
  ReceiptBody::Purpose* purpose = body.add_purposes();
  purpose->set_code(consent.purpose());
  if (const tellonce::v1::Purpose* def = directory.FindPurpose(consent.purpose())) {
    purpose->set_description(def->description());
  }
  *body.mutable_attributes() = consent.attributes();
  *body.mutable_valid_from() = consent.valid_from();
  *body.mutable_expires_at() = consent.expires_at();
  body.set_mode(consent.mode());
  body.set_collection_method(absl::StrCat("portal:", consent.portal()));
  *body.mutable_collected_at() = consent.captured_at();
  return body;
}

ConsentRegistry::ConsentRegistry(const DirectoryHolder* directory, ConsentStore* store,
                                 certs::SigningKey signing_key, Options options)
    : directory_(directory),
      store_(store),
      signing_key_(std::move(signing_key)),
      options_(std::move(options)) {}

void ConsentRegistry::Grant(
    const std::string& portal_id, std::string_view citizen_assertion,
    const tellonce::v1::GrantConsentRequest& request,
    absl::AnyInvocable<void(absl::StatusOr<tellonce::v1::GrantConsentResponse>)> done) {
  std::shared_ptr<const Directory> directory = directory_->Current();
  const absl::Time now = options_.clock();
  if (absl::Status status = CheckPortal(*directory, portal_id); !status.ok()) {
    done(status);
    return;
  }
  if (absl::Status status = ValidateGrant(request, *directory, options_.limits, now);
      !status.ok()) {
    done(status);
    return;
  }
  absl::StatusOr<certs::VerifiedCitizenAssertion> citizen =
      directory->VerifyCitizenAssertion(portal_id, citizen_assertion, request.citizen_id(), now);
  if (!citizen.ok()) {
    done(citizen.status());
    return;
  }

  tellonce::v1::StoredConsent record;
  Consent& consent = *record.mutable_consent();
  consent.set_consent_id(NewConsentId(now));
  consent.set_citizen_id(request.citizen_id());
  consent.set_consumer(request.consumer());
  *consent.mutable_attributes() = request.attributes();
  consent.set_purpose(request.purpose());
  if (request.has_valid_from()) {
    *consent.mutable_valid_from() = request.valid_from();
  } else {
    *consent.mutable_valid_from() = ToProtoTime(now);
  }
  *consent.mutable_expires_at() = request.expires_at();
  consent.set_mode(request.mode());
  consent.set_portal(portal_id);
  *consent.mutable_captured_at() = ToProtoTime(now);
  consent.set_status(tellonce::v1::ACTIVE);
  ConsentEvent* granted = consent.add_events();
  granted->set_kind(ConsentEvent::GRANTED);
  *granted->mutable_at() = ToProtoTime(now);
  granted->set_actor(portal_id);
  granted->set_citizen_authenticated_by(citizen->issuer);
  granted->set_citizen_assertion_id(citizen->token_id);
  granted->set_citizen_assertion_sha256(citizen->token_sha256);
  consent.set_request_id(request.request_id());

  absl::StatusOr<ConsentReceipt> receipt =
      certs::SignReceipt(BuildReceiptBody(consent, *directory, options_.issuer, now), signing_key_);
  if (!receipt.ok()) {
    done(receipt.status());
    return;
  }
  *record.mutable_receipt() = *std::move(receipt);

  record.set_request_fingerprint(
      certs::HashToBytes(certs::Sha256({SerializeDeterministic(request)})));

  store_->Grant(std::move(record), [done = std::move(done)](
                                       absl::StatusOr<ConsentStore::GrantOutcome> outcome) mutable {
    if (!outcome.ok()) {
      done(outcome.status());
      return;
    }
    tellonce::v1::GrantConsentResponse response;
    *response.mutable_consent() = std::move(outcome->consent);
    *response.mutable_receipt() = std::move(outcome->receipt);
    done(std::move(response));
  });
}

void ConsentRegistry::Revoke(
    const std::string& portal_id, std::string_view citizen_assertion,
    const tellonce::v1::RevokeConsentRequest& request,
    absl::AnyInvocable<void(absl::StatusOr<tellonce::v1::RevokeConsentResponse>)> done) {
  std::shared_ptr<const Directory> directory = directory_->Current();
  if (absl::Status status = CheckPortal(*directory, portal_id); !status.ok()) {
    done(status);
    return;
  }
  if (absl::Status status = ValidateRevoke(request, *directory, options_.limits); !status.ok()) {
    done(status);
    return;
  }
  absl::StatusOr<certs::VerifiedCitizenAssertion> citizen = directory->VerifyCitizenAssertion(
      portal_id, citizen_assertion, request.citizen_id(), options_.clock());
  if (!citizen.ok()) {
    done(citizen.status());
    return;
  }
  ConsentEvent revoked;
  revoked.set_actor(portal_id);
  revoked.set_reason(request.reason());
  revoked.set_citizen_authenticated_by(citizen->issuer);
  revoked.set_citizen_assertion_id(citizen->token_id);
  revoked.set_citizen_assertion_sha256(citizen->token_sha256);
  store_->Revoke(request.consent_id(), request.citizen_id(), std::move(revoked), options_.clock(),
                 [done = std::move(done)](absl::StatusOr<Consent> consent) mutable {
                   if (!consent.ok()) {
                     done(consent.status());
                     return;
                   }
                   tellonce::v1::RevokeConsentResponse response;
                   *response.mutable_consent() = *std::move(consent);
                   done(std::move(response));
                 });
}

absl::StatusOr<tellonce::v1::GetConsentResponse> ConsentRegistry::Get(
    const std::string& portal_id, std::string_view citizen_assertion,
    const tellonce::v1::GetConsentRequest& request) {
  std::shared_ptr<const Directory> directory = directory_->Current();
  if (absl::Status status = CheckPortal(*directory, portal_id); !status.ok()) return status;
  if (absl::Status status = ValidateGet(request, *directory, options_.limits); !status.ok()) {
    return status;
  }
  if (absl::StatusOr<certs::VerifiedCitizenAssertion> citizen = directory->VerifyCitizenAssertion(
          portal_id, citizen_assertion, request.citizen_id(), options_.clock());
      !citizen.ok()) {
    return citizen.status();
  }
  absl::StatusOr<tellonce::v1::StoredConsent> record =
      store_->Get(request.consent_id(), request.citizen_id(), options_.clock());
  if (!record.ok()) return record.status();
  tellonce::v1::GetConsentResponse response;
  *response.mutable_consent() = std::move(*record->mutable_consent());
  *response.mutable_receipt() = std::move(*record->mutable_receipt());
  return response;
}

absl::StatusOr<tellonce::v1::ListConsentsResponse> ConsentRegistry::List(
    const std::string& portal_id, std::string_view citizen_assertion,
    const tellonce::v1::ListConsentsRequest& request) {
  std::shared_ptr<const Directory> directory = directory_->Current();
  if (absl::Status status = CheckPortal(*directory, portal_id); !status.ok()) return status;
  if (absl::Status status = ValidateList(request, *directory, options_.limits); !status.ok()) {
    return status;
  }
  if (absl::StatusOr<certs::VerifiedCitizenAssertion> citizen = directory->VerifyCitizenAssertion(
          portal_id, citizen_assertion, request.citizen_id(), options_.clock());
      !citizen.ok()) {
    return citizen.status();
  }
  const int page_size = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  absl::StatusOr<ConsentStore::Page> page = store_->List(
      request.citizen_id(), request.status(), page_size, request.page_token(), options_.clock());
  if (!page.ok()) return page.status();
  tellonce::v1::ListConsentsResponse response;
  for (Consent& consent : page->consents) *response.add_consents() = std::move(consent);
  response.set_next_page_token(std::move(page->next_page_token));
  return response;
}

}  // namespace tellonce::consent
