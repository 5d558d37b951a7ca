#include "portal/citizen_api.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certs/signing.h"
#include "google/protobuf/util/time_util.h"
#include "openssl/evp.h"
#include "openssl/pem.h"
#include "proto/textproto.h"

namespace tellonce::portal {
namespace {

CitizenCredential Who(const Session& session) {
  return CitizenCredential{session.citizen_id, session.id_token};
}

bool HasRole(const tellonce::v1::Agency& agency, tellonce::v1::Role role) {
  return std::find(agency.roles().begin(), agency.roles().end(), role) != agency.roles().end();
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), length));
}

constexpr size_t kMaxReasonBytes = 256;
constexpr size_t kMaxRequestIdBytes = 128;

}  // namespace

tellonce::v1::DirectoryView MakeDirectoryView(const tellonce::v1::Directory& directory) {
  tellonce::v1::DirectoryView view;
  for (const tellonce::v1::Agency& a : directory.agencies()) {
    auto* out = view.add_agencies();
    out->set_id(a.id());
    out->set_name(a.name().empty() ? a.id() : a.name());
    out->set_consumer(HasRole(a, tellonce::v1::CONSUMER));
    out->set_provider(HasRole(a, tellonce::v1::PROVIDER));
  }
  for (const tellonce::v1::AttributeDef& a : directory.attributes()) {
    auto* out = view.add_attributes();
    out->set_name(a.name());
    out->set_description(a.description().empty() ? a.name() : a.description());
    out->set_type(tellonce::v1::AttributeType_Name(a.type()));
    out->set_provider(a.provider());
  }
  for (const tellonce::v1::Purpose& p : directory.purposes()) {
    auto* out = view.add_purposes();
    out->set_code(p.code());
    out->set_description(p.description().empty() ? p.code() : p.description());
  }
  for (const tellonce::v1::Mandate& m : directory.mandates()) {
    auto* out = view.add_mandates();
    out->set_id(m.id());
    out->set_consumer(m.consumer());
    *out->mutable_attributes() = m.attributes();
    out->set_purpose(m.purpose());
    out->set_legal_reference(m.legal_reference());
  }
  // The directory's defaults (directory.proto) when it sets none.
  const int64_t lifetime = directory.limits().max_consent_lifetime().seconds();
  view.mutable_max_consent_lifetime()->set_seconds(lifetime > 0 ? lifetime : 365 * 86400);
  const uint32_t max_attributes = directory.limits().max_attributes_per_consent();
  view.set_max_attributes_per_consent(max_attributes > 0 ? max_attributes : 32);
  return view;
}

absl::StatusOr<tellonce::v1::SigningKeyList> LoadSigningKeys(const std::string& dir) {
  tellonce::v1::SigningKeyList out;
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".pem") files.push_back(entry.path());
  }
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("signing_keys_dir: ", dir, ": ", ec.message()));
  }
  std::sort(files.begin(), files.end());
  for (const std::filesystem::path& path : files) {
    const std::string key_id = path.stem().string();
    auto bad = [&](absl::string_view reason) {
      return absl::InvalidArgumentError(
          absl::StrCat("signing_keys_dir: ", path.string(), ": ", reason));
    };
    if (absl::Status s = certs::CheckKeyId(key_id); !s.ok()) return bad(s.message());
    absl::StatusOr<std::string> pem = ReadFileToString(path.string());
    if (!pem.ok()) return pem.status();
    // Checks that it is an EC P-256 public key.
    if (absl::StatusOr<certs::VerifyingKey> k = certs::VerifyingKey::FromPublicKeyPem(*pem);
        !k.ok()) {
      return bad(k.status().message());
    }
    BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
    EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (key == nullptr) return bad("not a PEM public key");
    unsigned char* der = nullptr;
    const int length = i2d_PUBKEY(key, &der);
    EVP_PKEY_free(key);
    if (length <= 0) return bad("cannot encode the key");
    std::string spki(reinterpret_cast<char*>(der), static_cast<size_t>(length));
    OPENSSL_free(der);
    auto* k = out.add_keys();
    k->set_key_id(key_id);
    k->set_sha256(Sha256Hex(spki));
    k->set_spki(std::move(spki));
  }
  if (out.keys().empty()) {
    return absl::NotFoundError(absl::StrCat("signing_keys_dir: ", dir, ": holds no <key_id>.pem"));
  }
  return out;
}

tellonce::v1::ToldOnce SummarizeToldOnce(const tellonce::v1::AccessHistory& history,
                                         const tellonce::v1::Directory& directory) {
  std::map<std::string, tellonce::v1::ToldOnce::Fact> facts;
  std::map<std::string, std::set<std::string>> consumers;
  tellonce::v1::ToldOnce out;
  for (const tellonce::v1::LoggedAccessEvent& logged : history.events()) {
    const tellonce::v1::AccessEvent& e = logged.event();
    if (e.outcome() != tellonce::v1::AccessEvent::ALLOWED) {
      out.set_refusals(out.refusals() + 1);
      continue;
    }
    for (const std::string& attribute : e.attributes()) {
      tellonce::v1::ToldOnce::Fact& fact = facts[attribute];
      fact.set_attribute(attribute);
      fact.set_provider(e.provider());
      if (e.notified_event_type().empty()) {
        fact.set_deliveries(fact.deliveries() + 1);
        consumers[attribute].insert(e.consumer());
        out.set_times_not_asked(out.times_not_asked() + 1);
      } else {
        fact.set_changes_told(fact.changes_told() + 1);
      }
    }
  }
  for (auto& [attribute, fact] : facts) {
    // The catalogue's provider when the event named none (change notifications).
    if (fact.provider().empty()) {
      for (const auto& def : directory.attributes()) {
        if (def.name() == attribute) fact.set_provider(def.provider());
      }
    }
    for (const std::string& c : consumers[attribute]) fact.add_consumers(c);
    *out.add_facts() = std::move(fact);
  }
  return out;
}

absl::Status CheckConsentId(const std::string& id) {
  static constexpr std::string_view kCrockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  if (id.size() != 26 || !std::all_of(id.begin(), id.end(), [](char c) {
        return kCrockford.find(c) != std::string_view::npos;
      })) {
    return absl::InvalidArgumentError("consent id: malformed (26 characters, Crockford base32)");
  }
  return absl::OkStatus();
}

CitizenApi::CitizenApi(BrokerClient* broker, tellonce::v1::Directory directory,
                       tellonce::v1::SigningKeyList keys)
    : broker_(broker),
      directory_(std::move(directory)),
      directory_view_(MakeDirectoryView(directory_)),
      keys_(std::move(keys)) {}

absl::StatusOr<tellonce::v1::ConsentList> CitizenApi::Consents(const Session& session) const {
  absl::StatusOr<std::vector<tellonce::v1::Consent>> consents = broker_->ListConsents(Who(session));
  if (!consents.ok()) return consents.status();
  tellonce::v1::ConsentList out;
  for (tellonce::v1::Consent& c : *consents) *out.add_consents() = std::move(c);
  return out;
}

absl::StatusOr<tellonce::v1::GetConsentResponse> CitizenApi::Consent(
    const Session& session, const std::string& consent_id) const {
  if (absl::Status s = CheckConsentId(consent_id); !s.ok()) return s;
  return broker_->GetConsent(Who(session), consent_id);
}

absl::StatusOr<tellonce::v1::GrantConsentResponse> CitizenApi::Grant(
    const Session& session, const tellonce::v1::GrantRequest& request) const {
  if (request.request_id().empty() || request.request_id().size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id: required, at most ", kMaxRequestIdBytes, " characters"));
  }
  if (request.consumer().empty()) return absl::InvalidArgumentError("consumer: required");
  if (request.attributes().empty()) {
    return absl::InvalidArgumentError("attributes: choose at least one");
  }
  if (request.purpose().empty()) return absl::InvalidArgumentError("purpose: required");
  if (!request.has_expires_at()) return absl::InvalidArgumentError("expires_at: required");
  if (request.mode() == tellonce::v1::CONSENT_MODE_UNSPECIFIED) {
    return absl::InvalidArgumentError("mode: ONE_TIME or UNTIL_EXPIRY");
  }
  tellonce::v1::GrantConsentRequest grant;
  // Scoped to the citizen: one browser's request id never collides with another's.
  grant.set_request_id(absl::StrCat("portal:", Sha256Hex(session.citizen_id).substr(0, 16), ":",
                                    request.request_id()));
  grant.set_consumer(request.consumer());
  *grant.mutable_attributes() = request.attributes();
  grant.set_purpose(request.purpose());
  *grant.mutable_expires_at() = request.expires_at();
  grant.set_mode(request.mode());
  return broker_->GrantConsent(Who(session), std::move(grant));
}

absl::StatusOr<tellonce::v1::Consent> CitizenApi::Revoke(
    const Session& session, const std::string& consent_id,
    const tellonce::v1::RevokeRequest& request) const {
  if (absl::Status s = CheckConsentId(consent_id); !s.ok()) return s;
  if (request.reason().size() > kMaxReasonBytes) {
    return absl::InvalidArgumentError(absl::StrCat("reason: at most ", kMaxReasonBytes, " bytes"));
  }
  return broker_->RevokeConsent(
      Who(session), consent_id,
      request.reason().empty() ? "revoked by the citizen in the portal" : request.reason());
}

absl::StatusOr<tellonce::v1::AccessHistory> CitizenApi::History(const Session& session) const {
  absl::StatusOr<std::vector<tellonce::v1::LoggedAccessEvent>> events =
      broker_->ListAccessEvents(Who(session));
  if (!events.ok()) return events.status();
  tellonce::v1::AccessHistory out;
  for (auto& e : *events) *out.add_events() = std::move(e);
  return out;
}

absl::StatusOr<tellonce::v1::EntryProof> CitizenApi::Proof(const Session& session,
                                                           uint64_t index) const {
  const absl::Status not_found =
      absl::NotFoundError(absl::StrCat("no entry ", index, " in your history"));
  auto size_of = [](const tellonce::v1::SignedCheckpoint& c) -> uint64_t {
    tellonce::v1::Checkpoint body;
    return body.ParseFromString(c.body()) ? body.tree_size() : 0;
  };
  absl::StatusOr<tellonce::v1::SignedCheckpoint> checkpoint = broker_->GetCheckpoint(false);
  if (!checkpoint.ok()) return checkpoint.status();
  if (index >= size_of(*checkpoint)) {
    // Newer than the last signed checkpoint: ask for one that covers it.
    checkpoint = broker_->GetCheckpoint(true);
    if (!checkpoint.ok()) return checkpoint.status();
    if (index >= size_of(*checkpoint)) return not_found;
  }
  absl::StatusOr<tellonce::v1::GetInclusionProofResponse> proof =
      broker_->GetInclusionProof(index, size_of(*checkpoint));
  if (!proof.ok()) {
    return proof.status().code() == absl::StatusCode::kInvalidArgument ? not_found : proof.status();
  }
  tellonce::v1::AccessEvent event;
  if (!event.ParseFromString(proof->event_bytes()) || event.citizen_id() != session.citizen_id) {
    return not_found;
  }
  tellonce::v1::EntryProof out;
  *out.mutable_proof() = *std::move(proof);
  *out.mutable_checkpoint() = *std::move(checkpoint);
  return out;
}

absl::StatusOr<tellonce::v1::ToldOnce> CitizenApi::ToldOnceSummary(const Session& session) const {
  absl::StatusOr<tellonce::v1::AccessHistory> history = History(session);
  if (!history.ok()) return history.status();
  return SummarizeToldOnce(*history, directory_);
}

}  // namespace tellonce::portal
