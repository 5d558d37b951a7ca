#ifndef TELLONCE_PORTAL_CITIZEN_API_H_
#define TELLONCE_PORTAL_CITIZEN_API_H_

// Design: what a signed-in citizen can do through the portal, independent of HTTP.
// Each method acts for the citizen of the session it is given, and only for them: the
// citizen id never comes from the request, and the broker checks the session's ID
// token on every citizen-bound call. server.cc is the HTTP face over it (routing,
// cookies, CSRF, JSON, status codes); a second face (an app's API) would reuse it.
//
//   consents     list (all statuses), receipt, grant, revoke
//   history      every access event about the citizen, denials included
//   proof        an entry's inclusion proof and the signed checkpoint it leads to,
//                only for an entry about this citizen; the browser checks both
//   told once    which facts agencies reused, from the history
//   directory    agencies, attributes, purposes and mandates in words
//   keys         the broker's public signing keys, for the browser's checks
//
// Thread-safe: no mutable state of its own.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "portal/broker_client.h"
#include "portal/sessions.h"
#include "tellonce/v1/directory.pb.h"
#include "tellonce/v1/portal.pb.h"

namespace tellonce::portal {

// The directory in words (agency names, purpose and attribute descriptions, mandates).
tellonce::v1::DirectoryView MakeDirectoryView(const tellonce::v1::Directory& directory);

// Every "<key_id>.pem" in `dir` as DER SubjectPublicKeyInfo. NOT_FOUND when none,
// INVALID_ARGUMENT naming a file that is not an EC P-256 public key.
absl::StatusOr<tellonce::v1::SigningKeyList> LoadSigningKeys(const std::string& dir);

// The "told once" summary of an access history (pure).
tellonce::v1::ToldOnce SummarizeToldOnce(const tellonce::v1::AccessHistory& history,
                                         const tellonce::v1::Directory& directory);

// OK when `id` looks like a consent id (26 Crockford base32 characters);
// INVALID_ARGUMENT "consent id: malformed" otherwise.
absl::Status CheckConsentId(const std::string& id);

class CitizenApi {
 public:
  // `broker` is not owned and must outlive the API.
  CitizenApi(BrokerClient* broker, tellonce::v1::Directory directory,
             tellonce::v1::SigningKeyList keys);

  absl::StatusOr<tellonce::v1::ConsentList> Consents(const Session& session) const;
  // The consent with its signed receipt. NOT_FOUND for a consent of another citizen.
  absl::StatusOr<tellonce::v1::GetConsentResponse> Consent(const Session& session,
                                                           const std::string& consent_id) const;
  // INVALID_ARGUMENT naming the field for a malformed request (the broker's own checks
  // follow: unknown agency, attribute or purpose, expiry beyond the allowed maximum).
  absl::StatusOr<tellonce::v1::GrantConsentResponse> Grant(
      const Session& session, const tellonce::v1::GrantRequest& request) const;
  // FAILED_PRECONDITION when the consent is no longer active.
  absl::StatusOr<tellonce::v1::Consent> Revoke(const Session& session,
                                               const std::string& consent_id,
                                               const tellonce::v1::RevokeRequest& request) const;
  absl::StatusOr<tellonce::v1::AccessHistory> History(const Session& session) const;
  // NOT_FOUND "no entry <index> in your history" when the entry is not about the
  // session's citizen (or does not exist): the same answer either way.
  absl::StatusOr<tellonce::v1::EntryProof> Proof(const Session& session, uint64_t index) const;
  absl::StatusOr<tellonce::v1::ToldOnce> ToldOnceSummary(const Session& session) const;

  const tellonce::v1::DirectoryView& directory_view() const { return directory_view_; }
  const tellonce::v1::SigningKeyList& keys() const { return keys_; }

 private:
  BrokerClient* const broker_;
  const tellonce::v1::Directory directory_;
  const tellonce::v1::DirectoryView directory_view_;
  const tellonce::v1::SigningKeyList keys_;
};

}  // namespace tellonce::portal

#endif  // TELLONCE_PORTAL_CITIZEN_API_H_
