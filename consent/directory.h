#ifndef TELLONCE_CONSENT_DIRECTORY_H_
#define TELLONCE_CONSENT_DIRECTORY_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "certs/citizen_assertion.h"
#include "tellonce/v1/directory.pb.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace tellonce::consent {

// A citizen identity provider from the directory, with its keys loaded.
struct TrustedIdentityProvider {
  std::string issuer;
  certs::Jwks keys;
  std::vector<certs::JwsAlgorithm> algorithms;
  std::string citizen_claim;
  absl::Duration max_age;
};

// The federation directory, validated and indexed for lookups. Immutable once built,
// so one instance can be shared by all threads; a reload builds a new instance.
class Directory {
 public:
  // Parses a text-format tellonce.v1.Directory file and validates it. Errors name the
  // file and, for syntax, the line; for content, the field path, e.g.
  // "directory.yaml: attributes[2].provider: unknown agency \"bnk\"".
  static absl::StatusOr<std::shared_ptr<const Directory>> LoadFile(const std::string& path);

  // Validates `proto`: trust_domain set and DNS-like; agency ids unique and well-formed
  // ([a-z0-9][a-z0-9-]{0,62}); every agency has a role; providers have a connector
  // endpoint; attribute names unique, well-formed ([a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+),
  // typed, with a provider that exists and has the provider role; purpose codes unique
  // and well-formed ([A-Z][A-Z0-9_]{0,63}); mandates reference an existing consumer,
  // attributes and purpose and carry a legal reference; the citizen-id pattern compiles;
  // limits are positive; citizen identity providers have a unique issuer, a readable
  // JWKS, algorithms from ES256/RS256, a max_age up to 24 hours; a portal has a client
  // id and names known identity providers, and is not also a consumer. `source`
  // prefixes error messages; relative jwks_file paths are resolved against
  // `base_dir` (LoadFile: the directory file's folder; empty: the working directory).
  static absl::StatusOr<std::shared_ptr<const Directory>> FromProto(
      tellonce::v1::Directory proto, std::string_view source = "directory",
      std::string_view base_dir = "");

  const tellonce::v1::Directory& proto() const { return proto_; }
  const std::string& trust_domain() const { return proto_.trust_domain(); }

  // nullptr when absent.
  const tellonce::v1::Agency* FindAgency(std::string_view id) const;
  const tellonce::v1::AttributeDef* FindAttribute(std::string_view name) const;
  const tellonce::v1::Purpose* FindPurpose(std::string_view code) const;
  // A mandate letting `consumer` obtain `attribute` for `purpose`; nullptr when none.
  const tellonce::v1::Mandate* FindMandate(std::string_view consumer, std::string_view purpose,
                                           std::string_view attribute) const;

  bool HasRole(std::string_view agency_id, tellonce::v1::Role role) const;

  // nullptr when the directory does not trust `issuer`.
  const TrustedIdentityProvider* FindIdentityProvider(std::string_view issuer) const;

  // Checks that `token` (the citizen's ID token forwarded by portal `portal_id`)
  // proves that citizen `citizen_id` has just authenticated to that portal: issued by
  // one of the portal's identity providers, verified with its keys and algorithms,
  // audience the portal's client id, fresh, and naming `citizen_id`. Returns the
  // evidence, or UNAUTHENTICATED (missing, malformed, unknown issuer, bad signature,
  // expired, too old) or PERMISSION_DENIED (another portal's token, another citizen,
  // `portal_id` not a portal) with a reason that echoes no token content.
  absl::StatusOr<certs::VerifiedCitizenAssertion> VerifyCitizenAssertion(
      std::string_view portal_id, std::string_view token, std::string_view citizen_id,
      absl::Time now) const;

  // OK when `citizen_id` matches the pattern and passes the checksum. INVALID_ARGUMENT
  // otherwise, with a reason that does not echo the id.
  absl::Status CheckCitizenId(std::string_view citizen_id) const;

  // Defaults applied: 365 days, 32.
  absl::Duration max_consent_lifetime() const { return max_consent_lifetime_; }
  uint32_t max_attributes_per_consent() const { return max_attributes_per_consent_; }

 private:
  Directory() = default;

  tellonce::v1::Directory proto_;
  absl::flat_hash_map<std::string, int> agencies_;    // id -> index in proto_
  absl::flat_hash_map<std::string, int> attributes_;  // name -> index
  absl::flat_hash_map<std::string, int> purposes_;    // code -> index
  absl::flat_hash_map<std::string, TrustedIdentityProvider> identity_providers_;  // by issuer
  // RE2: linear time in the input, no backtracking. Null when the rule has no pattern.
  std::shared_ptr<const re2::RE2> citizen_pattern_;
  absl::Duration max_consent_lifetime_ = absl::Hours(24 * 365);
  uint32_t max_attributes_per_consent_ = 32;
};

// Checksum algorithms for citizen ids; exposed for tests.
bool LuhnValid(std::string_view digits);
bool EstonianIsikukoodValid(std::string_view digits);

// The directory in force, replaced as a whole when the file is reloaded (SIGHUP). A
// caller takes one snapshot per request (Current) and uses it throughout, so a request
// never sees two directories. Thread-safe.
class DirectoryHolder {
 public:
  explicit DirectoryHolder(std::shared_ptr<const Directory> initial)
      : current_(std::move(initial)) {}
  // The directory in force; the snapshot stays valid however long the caller keeps it.
  std::shared_ptr<const Directory> Current() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return current_;
  }
  // Puts `next` (already validated) in force for every later Current().
  void Replace(std::shared_ptr<const Directory> next) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    current_ = std::move(next);
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const Directory> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tellonce::consent

#endif  // TELLONCE_CONSENT_DIRECTORY_H_
