#include "consent/access_decision.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tellonce::consent {
namespace {

using tellonce::v1::Consent;
using tellonce::v1::ResultCode;

// A citizen's history is scanned for the reason of a refusal; beyond this many
// consents the answer is NO_BASIS rather than a long scan on the request path.
constexpr int kMaxHistoryScanned = 2000;
constexpr int kHistoryPageSize = 500;

bool Covers(const Consent& consent, const std::string& attribute) {
  return std::find(consent.attributes().begin(), consent.attributes().end(), attribute) !=
         consent.attributes().end();
}

// The consents of `consumer` in the citizen's history, oldest first, as reported at
// `now`. Only read when something is refused.
absl::StatusOr<std::vector<Consent>> History(ConsentStore& store, const std::string& citizen_id,
                                             const std::string& consumer, absl::Time now) {
  std::vector<Consent> history;
  std::string token;
  int scanned = 0;
  do {
    absl::StatusOr<ConsentStore::Page> page = store.List(
        citizen_id, tellonce::v1::CONSENT_STATUS_UNSPECIFIED, kHistoryPageSize, token, now);
    if (!page.ok()) return page.status();
    for (Consent& c : page->consents) {
      if (c.consumer() == consumer) history.push_back(std::move(c));
    }
    scanned += kHistoryPageSize;
    token = page->next_page_token;
  } while (!token.empty() && scanned < kMaxHistoryScanned);
  return history;
}

void Refuse(AccessDecision& d, ResultCode code, std::string detail) {
  d.code = code;
  d.detail = std::move(detail);
}

}  // namespace

absl::StatusOr<std::vector<AccessDecision>> DecideAccess(
    const Directory& directory, ConsentStore& store, const std::string& consumer,
    const std::string& citizen_id, const std::string& purpose,
    const std::vector<std::string>& attributes, absl::Time now) {
  absl::StatusOr<std::vector<Consent>> active = store.FindActive(citizen_id, consumer, now);
  if (!active.ok()) return active.status();

  std::vector<AccessDecision> decisions(attributes.size());
  bool any_refused = false;
  for (size_t i = 0; i < attributes.size(); ++i) {
    AccessDecision& d = decisions[i];
    d.attribute = attributes[i];
    const tellonce::v1::AttributeDef* def = directory.FindAttribute(d.attribute);
    if (def == nullptr) {
      Refuse(d, tellonce::v1::RESULT_UNKNOWN_ATTRIBUTE, "not in the attribute catalogue");
      continue;
    }
    d.provider = def->provider();

    const Consent* standing = nullptr;
    const Consent* one_time = nullptr;
    for (const Consent& c : *active) {
      if (c.purpose() != purpose || !Covers(c, d.attribute)) continue;
      if (c.mode() == tellonce::v1::ONE_TIME) {
        if (one_time == nullptr) one_time = &c;  // the oldest is spent first
      } else if (standing == nullptr) {
        standing = &c;
      }
    }
    if (standing != nullptr) {
      d.code = tellonce::v1::RESULT_OK;
      d.basis.set_consent_id(standing->consent_id());
      continue;
    }
    if (const tellonce::v1::Mandate* mandate =
            directory.FindMandate(consumer, purpose, d.attribute)) {
      d.code = tellonce::v1::RESULT_OK;
      d.basis.set_mandate_id(mandate->id());
      d.basis.set_legal_reference(mandate->legal_reference());
      continue;
    }
    if (one_time != nullptr) {
      d.code = tellonce::v1::RESULT_OK;
      d.basis.set_consent_id(one_time->consent_id());
      d.spends_one_time_consent = true;
      continue;
    }
    any_refused = true;
  }
  if (!any_refused) return decisions;

  absl::StatusOr<std::vector<Consent>> history = History(store, citizen_id, consumer, now);
  if (!history.ok()) return history.status();
  for (AccessDecision& d : decisions) {
    if (d.code != tellonce::v1::RESULT_CODE_UNSPECIFIED) continue;
    // The most recent consent for this attribute and purpose tells why it no longer
    // allows the access.
    const Consent* latest = nullptr;
    bool other_purpose = false;
    for (const Consent& c : *history) {
      if (!Covers(c, d.attribute)) continue;
      if (c.purpose() == purpose) {
        latest = &c;
      } else if (c.status() == tellonce::v1::ACTIVE) {
        other_purpose = true;
      }
    }
    if (latest != nullptr && latest->status() != tellonce::v1::ACTIVE) {
      d.basis.set_consent_id(latest->consent_id());
      switch (latest->status()) {
        case tellonce::v1::REVOKED:
          Refuse(d, tellonce::v1::RESULT_CONSENT_REVOKED, "the consent was revoked");
          continue;
        case tellonce::v1::EXPIRED:
          Refuse(d, tellonce::v1::RESULT_CONSENT_EXPIRED, "the consent has expired");
          continue;
        case tellonce::v1::USED:
          Refuse(d, tellonce::v1::RESULT_CONSENT_USED, "the one-time consent was used");
          continue;
        default:
          d.basis.Clear();
          break;
      }
    }
    if (latest != nullptr) {
      // ACTIVE but not yet valid (valid_from in the future): not a basis yet.
      Refuse(d, tellonce::v1::RESULT_NO_BASIS, "the consent is not valid yet");
    } else if (other_purpose) {
      Refuse(d, tellonce::v1::RESULT_WRONG_PURPOSE,
             absl::StrCat("consented for another purpose, not ", purpose));
    } else {
      Refuse(d, tellonce::v1::RESULT_NO_BASIS,
             "no consent or mandate for this consumer and purpose");
    }
  }
  return decisions;
}

absl::StatusOr<std::optional<tellonce::v1::Basis>> NotificationBasis(
    const Directory& directory, ConsentStore& store, const std::string& subscriber,
    const std::string& citizen_id, const std::vector<std::string>& attributes, absl::Time now) {
  absl::StatusOr<std::vector<Consent>> active = store.FindActive(citizen_id, subscriber, now);
  if (!active.ok()) return active.status();
  for (const Consent& c : *active) {
    if (std::all_of(attributes.begin(), attributes.end(),
                    [&](const std::string& a) { return Covers(c, a); })) {
      tellonce::v1::Basis basis;
      basis.set_consent_id(c.consent_id());
      return basis;
    }
  }
  const tellonce::v1::Mandate* first = nullptr;
  for (const std::string& attribute : attributes) {
    const tellonce::v1::Mandate* found = nullptr;
    for (const tellonce::v1::Mandate& m : directory.proto().mandates()) {
      if (m.consumer() == subscriber && std::find(m.attributes().begin(), m.attributes().end(),
                                                  attribute) != m.attributes().end()) {
        found = &m;
        break;
      }
    }
    if (found == nullptr) return std::nullopt;
    if (first == nullptr) first = found;
  }
  if (first == nullptr) return std::nullopt;
  tellonce::v1::Basis basis;
  basis.set_mandate_id(first->id());
  basis.set_legal_reference(first->legal_reference());
  return basis;
}

}  // namespace tellonce::consent
