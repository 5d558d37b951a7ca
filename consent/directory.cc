#include "consent/directory.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "proto/identifiers.h"
#include "proto/textproto.h"
#include "proto/time.h"
#include "re2/re2.h"

namespace tellonce::consent {
namespace {

using ::tellonce::v1::Agency;
using ::tellonce::v1::AttributeDef;
using ::tellonce::v1::CitizenIdRule;
using ::tellonce::v1::Mandate;
using ::tellonce::v1::Purpose;
using ::tellonce::v1::Role;
using ::tellonce::v1::Subscription;

// Debian's abseil is built with its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW
// is 0), so std::string_view must be converted for StrCat and for map lookups.
absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Longest citizen id looked at; longer input is refused before the regex sees it.
constexpr size_t kMaxCitizenIdLength = 64;

// The first content problem of a directory, as "<source>: <path>: <reason>".
class ContentErrors {
 public:
  explicit ContentErrors(std::string_view source) : source_(source) {}
  absl::Status operator()(std::string_view path, std::string_view reason) const {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(source_), ": ", AsAbsl(path), ": ", AsAbsl(reason)));
  }

 private:
  std::string_view source_;
};

std::string Quoted(std::string_view s) { return absl::StrCat("\"", AsAbsl(s), "\""); }

// Lookup tables built while checking; moved into the Directory on success.
struct Index {
  absl::flat_hash_map<std::string, int> agencies;
  absl::flat_hash_map<std::string, int> attributes;
  absl::flat_hash_map<std::string, int> purposes;
};

bool AgencyHasRole(const Agency& agency, Role role) {
  return std::find(agency.roles().begin(), agency.roles().end(), role) != agency.roles().end();
}

absl::Status CheckAgencies(const tellonce::v1::Directory& d, const ContentErrors& error,
                           Index& index) {
  for (int i = 0; i < d.agencies_size(); ++i) {
    const Agency& agency = d.agencies(i);
    const std::string path = absl::StrCat("agencies[", i, "]");
    if (agency.id().empty()) return error(path + ".id", "required");
    if (!IsAgencyId(agency.id())) {
      return error(path + ".id", absl::StrCat("must match ", kAgencyIdPattern));
    }
    if (!index.agencies.emplace(agency.id(), i).second) {
      return error(path + ".id", absl::StrCat("duplicate agency id ", Quoted(agency.id())));
    }
    if (agency.roles().empty()) return error(path + ".roles", "at least one role is required");
    for (int j = 0; j < agency.roles_size(); ++j) {
      const std::string role_path = absl::StrCat(path, ".roles[", j, "]");
      const int role = agency.roles(j);
      if (role == tellonce::v1::ROLE_UNSPECIFIED) {
        return error(role_path, "must not be ROLE_UNSPECIFIED");
      }
      if (!tellonce::v1::Role_IsValid(role)) {
        return error(role_path, absl::StrCat("unknown role ", role));
      }
      if (std::find(agency.roles().begin(), agency.roles().begin() + j, role) !=
          agency.roles().begin() + j) {
        return error(role_path, absl::StrCat("duplicate role ", tellonce::v1::Role_Name(role)));
      }
    }
    if (agency.connector_endpoint().empty()) {
      if (AgencyHasRole(agency, tellonce::v1::PROVIDER)) {
        return error(path + ".connector_endpoint", "required for an agency with the provider role");
      }
    } else if (!IsHostPort(agency.connector_endpoint())) {
      return error(path + ".connector_endpoint", "must be host:port");
    }
    // A portal records consents that let consumers fetch data: one agency holding both
    // roles could consent on a citizen's behalf to itself.
    const bool portal = AgencyHasRole(agency, tellonce::v1::PORTAL);
    if (portal && AgencyHasRole(agency, tellonce::v1::CONSUMER)) {
      return error(path + ".roles", "an agency cannot be both PORTAL and CONSUMER");
    }
    if (!portal &&
        (!agency.portal_client_id().empty() || !agency.citizen_identity_providers().empty())) {
      return error(path + (agency.portal_client_id().empty() ? ".citizen_identity_providers"
                                                             : ".portal_client_id"),
                   "only for an agency with the portal role");
    }
    if (portal) {
      if (agency.portal_client_id().empty()) {
        return error(path + ".portal_client_id", "required for an agency with the portal role");
      }
      if (agency.portal_client_id().size() > 256 || !IsVisibleAscii(agency.portal_client_id())) {
        return error(path + ".portal_client_id", "must be 1..256 printable ASCII characters");
      }
      if (agency.citizen_identity_providers().empty()) {
        return error(path + ".citizen_identity_providers",
                     "at least one is required for an agency with the portal role");
      }
    }
  }
  return absl::OkStatus();
}

std::string ResolvePath(std::string_view base_dir, const std::string& path) {
  if (base_dir.empty() || (!path.empty() && path.front() == '/')) return path;
  return absl::StrCat(AsAbsl(base_dir), "/", path);
}

// Citizen identity providers: well-formed, keys loaded; then each portal's providers
// must be among them.
absl::Status CheckIdentityProviders(
    const tellonce::v1::Directory& d, const ContentErrors& error, std::string_view base_dir,
    absl::flat_hash_map<std::string, TrustedIdentityProvider>& providers) {
  for (int i = 0; i < d.citizen_identity_providers_size(); ++i) {
    const tellonce::v1::CitizenIdentityProvider& p = d.citizen_identity_providers(i);
    const std::string path = absl::StrCat("citizen_identity_providers[", i, "]");
    if (p.issuer().empty()) return error(path + ".issuer", "required");
    if (p.issuer().size() > 256 || !IsVisibleAscii(p.issuer())) {
      return error(path + ".issuer", "must be 1..256 printable ASCII characters");
    }
    TrustedIdentityProvider trusted;
    trusted.issuer = p.issuer();
    if (p.algorithms().empty()) {
      return error(path + ".algorithms", "at least one of \"ES256\", \"RS256\" is required");
    }
    for (int j = 0; j < p.algorithms_size(); ++j) {
      std::optional<certs::JwsAlgorithm> alg = certs::ParseJwsAlgorithm(p.algorithms(j));
      if (!alg) {
        return error(absl::StrCat(path, ".algorithms[", j, "]"), "must be \"ES256\" or \"RS256\"");
      }
      trusted.algorithms.push_back(*alg);
    }
    trusted.citizen_claim = p.citizen_claim().empty() ? "sub" : p.citizen_claim();
    trusted.max_age = absl::Minutes(15);
    if (p.has_max_age()) {
      absl::StatusOr<absl::Duration> max_age = CheckedFromProtoDuration(p.max_age(), "max_age");
      if (!max_age.ok() || *max_age <= absl::ZeroDuration() || *max_age > absl::Hours(24)) {
        return error(path + ".max_age", "must be positive and at most 24 hours");
      }
      trusted.max_age = *max_age;
    }
    if (p.jwks_file().empty()) return error(path + ".jwks_file", "required");
    absl::StatusOr<certs::Jwks> keys = certs::Jwks::FromFile(ResolvePath(base_dir, p.jwks_file()));
    if (!keys.ok()) return error(path + ".jwks_file", std::string(keys.status().message()));
    trusted.keys = *std::move(keys);
    if (!providers.emplace(p.issuer(), std::move(trusted)).second) {
      return error(path + ".issuer", absl::StrCat("duplicate issuer ", Quoted(p.issuer())));
    }
  }
  for (int i = 0; i < d.agencies_size(); ++i) {
    const Agency& agency = d.agencies(i);
    for (int j = 0; j < agency.citizen_identity_providers_size(); ++j) {
      const std::string& issuer = agency.citizen_identity_providers(j);
      if (!providers.contains(issuer)) {
        return error(absl::StrCat("agencies[", i, "].citizen_identity_providers[", j, "]"),
                     absl::StrCat("unknown identity provider ", Quoted(issuer)));
      }
    }
  }
  return absl::OkStatus();
}

// `path` names the field holding `agency_id`; the agency must exist and have `role`.
absl::Status CheckAgencyReference(const tellonce::v1::Directory& d, const Index& index,
                                  const ContentErrors& error, const std::string& path,
                                  std::string_view agency_id, Role role) {
  if (agency_id.empty()) return error(path, "required");
  auto it = index.agencies.find(AsAbsl(agency_id));
  if (it == index.agencies.end()) {
    return error(path, absl::StrCat("unknown agency ", Quoted(agency_id)));
  }
  if (!AgencyHasRole(d.agencies(it->second), role)) {
    std::string role_name = absl::AsciiStrToLower(tellonce::v1::Role_Name(role));
    return error(path, absl::StrCat("agency ", Quoted(agency_id), " does not have the ", role_name,
                                    " role"));
  }
  return absl::OkStatus();
}

absl::Status CheckAttributes(const tellonce::v1::Directory& d, const ContentErrors& error,
                             Index& index) {
  for (int i = 0; i < d.attributes_size(); ++i) {
    const AttributeDef& attribute = d.attributes(i);
    const std::string path = absl::StrCat("attributes[", i, "]");
    if (attribute.name().empty()) return error(path + ".name", "required");
    if (!IsAttributeName(attribute.name())) {
      return error(path + ".name", absl::StrCat("must match ", kAttributeNamePattern));
    }
    if (!index.attributes.emplace(attribute.name(), i).second) {
      return error(path + ".name", absl::StrCat("duplicate attribute ", Quoted(attribute.name())));
    }
    if (attribute.type() == tellonce::v1::ATTRIBUTE_TYPE_UNSPECIFIED) {
      return error(path + ".type", "must not be ATTRIBUTE_TYPE_UNSPECIFIED");
    }
    if (!tellonce::v1::AttributeType_IsValid(attribute.type())) {
      return error(path + ".type", absl::StrCat("unknown type ", attribute.type()));
    }
    absl::Status provider = CheckAgencyReference(d, index, error, path + ".provider",
                                                 attribute.provider(), tellonce::v1::PROVIDER);
    if (!provider.ok()) return provider;
  }
  return absl::OkStatus();
}

absl::Status CheckPurposes(const tellonce::v1::Directory& d, const ContentErrors& error,
                           Index& index) {
  for (int i = 0; i < d.purposes_size(); ++i) {
    const Purpose& purpose = d.purposes(i);
    const std::string path = absl::StrCat("purposes[", i, "].code");
    if (purpose.code().empty()) return error(path, "required");
    if (!IsUpperCode(purpose.code())) {
      return error(path, absl::StrCat("must match ", kUpperCodePattern));
    }
    if (!index.purposes.emplace(purpose.code(), i).second) {
      return error(path, absl::StrCat("duplicate purpose ", Quoted(purpose.code())));
    }
  }
  return absl::OkStatus();
}

// Each entry of `names` (the field at `path`) must be a catalogue attribute, once.
absl::Status CheckAttributeList(const google::protobuf::RepeatedPtrField<std::string>& names,
                                const Index& index, const ContentErrors& error,
                                const std::string& path) {
  if (names.empty()) return error(path, "at least one attribute is required");
  absl::flat_hash_set<std::string_view> seen;
  for (int j = 0; j < names.size(); ++j) {
    const std::string element = absl::StrCat(path, "[", j, "]");
    if (!index.attributes.contains(names[j])) {
      return error(element, absl::StrCat("unknown attribute ", Quoted(names[j])));
    }
    if (!seen.insert(names[j]).second) return error(element, "duplicate attribute");
  }
  return absl::OkStatus();
}

absl::Status CheckMandates(const tellonce::v1::Directory& d, const Index& index,
                           const ContentErrors& error) {
  absl::flat_hash_set<std::string_view> ids;
  for (int i = 0; i < d.mandates_size(); ++i) {
    const Mandate& mandate = d.mandates(i);
    const std::string path = absl::StrCat("mandates[", i, "]");
    if (mandate.id().empty()) return error(path + ".id", "required");
    if (!IsAgencyId(mandate.id())) {
      return error(path + ".id", absl::StrCat("must match ", kAgencyIdPattern));
    }
    if (!ids.insert(mandate.id()).second) {
      return error(path + ".id", absl::StrCat("duplicate mandate id ", Quoted(mandate.id())));
    }
    absl::Status consumer = CheckAgencyReference(d, index, error, path + ".consumer",
                                                 mandate.consumer(), tellonce::v1::CONSUMER);
    if (!consumer.ok()) return consumer;
    absl::Status attributes =
        CheckAttributeList(mandate.attributes(), index, error, path + ".attributes");
    if (!attributes.ok()) return attributes;
    if (mandate.purpose().empty()) return error(path + ".purpose", "required");
    if (!index.purposes.contains(mandate.purpose())) {
      return error(path + ".purpose", absl::StrCat("unknown purpose ", Quoted(mandate.purpose())));
    }
    if (absl::StripAsciiWhitespace(mandate.legal_reference()).empty()) {
      return error(path + ".legal_reference", "required");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSubscriptions(const tellonce::v1::Directory& d, const Index& index,
                                const ContentErrors& error) {
  for (int i = 0; i < d.subscriptions_size(); ++i) {
    const Subscription& subscription = d.subscriptions(i);
    const std::string path = absl::StrCat("subscriptions[", i, "]");
    // A subscriber pulls the changed values as a consumer, and deliveries go to its
    // connector.
    absl::Status agency = CheckAgencyReference(d, index, error, path + ".agency",
                                               subscription.agency(), tellonce::v1::CONSUMER);
    if (!agency.ok()) return agency;
    if (d.agencies(index.agencies.find(subscription.agency())->second)
            .connector_endpoint()
            .empty()) {
      return error(path + ".agency", absl::StrCat("agency ", Quoted(subscription.agency()),
                                                  " has no connector_endpoint to deliver to"));
    }
    if (subscription.event_types().empty()) {
      return error(path + ".event_types", "at least one event type is required");
    }
    for (int j = 0; j < subscription.event_types_size(); ++j) {
      if (!IsUpperCode(subscription.event_types(j))) {
        return error(absl::StrCat(path, ".event_types[", j, "]"),
                     absl::StrCat("must match ", kUpperCodePattern));
      }
    }
    absl::Status attributes =
        CheckAttributeList(subscription.attributes(), index, error, path + ".attributes");
    if (!attributes.ok()) return attributes;
  }
  return absl::OkStatus();
}

// RE2 syntax (the ECMAScript subset a citizen-id rule needs: classes, \\d, counts,
// alternation; no backreferences or lookaround), matched against the whole id in time
// linear in its length.
absl::Status ParseCitizenPattern(const CitizenIdRule& rule, const ContentErrors& error,
                                 std::shared_ptr<const re2::RE2>& pattern) {
  if (!CitizenIdRule::Checksum_IsValid(rule.checksum())) {
    return error("citizen_id_rule.checksum", absl::StrCat("unknown checksum ", rule.checksum()));
  }
  if (rule.pattern().empty()) return absl::OkStatus();
  re2::RE2::Options options;
  options.set_log_errors(false);
  options.set_encoding(re2::RE2::Options::EncodingLatin1);  // ids are printable ASCII
  auto compiled = std::make_shared<const re2::RE2>(rule.pattern(), options);
  if (!compiled->ok()) {
    return error("citizen_id_rule.pattern", absl::StrCat("does not compile: ", compiled->error()));
  }
  pattern = std::move(compiled);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Directory>> Directory::LoadFile(const std::string& path) {
  tellonce::v1::Directory proto;
  absl::Status parsed = ParseTextProtoFile(path, &proto);
  if (!parsed.ok()) return parsed;
  const size_t slash = path.rfind('/');
  const std::string base_dir = slash == std::string::npos ? "" : path.substr(0, slash);
  return FromProto(std::move(proto), path, slash == 0 ? "/" : base_dir);
}

absl::StatusOr<std::shared_ptr<const Directory>> Directory::FromProto(tellonce::v1::Directory proto,
                                                                      std::string_view source,
                                                                      std::string_view base_dir) {
  const ContentErrors error(source);

  if (proto.trust_domain().empty()) return error("trust_domain", "required");
  if (!IsTrustDomain(proto.trust_domain())) {
    return error("trust_domain", "must be a lower-case DNS name, e.g. \"gov.example\"");
  }
  Index index;
  if (absl::Status s = CheckAgencies(proto, error, index); !s.ok()) return s;
  if (absl::Status s = CheckAttributes(proto, error, index); !s.ok()) return s;
  if (absl::Status s = CheckPurposes(proto, error, index); !s.ok()) return s;
  if (absl::Status s = CheckMandates(proto, index, error); !s.ok()) return s;

  std::shared_ptr<Directory> directory(new Directory());
  if (absl::Status s =
          ParseCitizenPattern(proto.citizen_id_rule(), error, directory->citizen_pattern_);
      !s.ok()) {
    return s;
  }

  if (proto.limits().has_max_consent_lifetime()) {
    absl::StatusOr<absl::Duration> lifetime = CheckedFromProtoDuration(
        proto.limits().max_consent_lifetime(), "limits.max_consent_lifetime");
    if (!lifetime.ok()) return error("limits.max_consent_lifetime", "not a valid duration");
    const absl::Duration value = *lifetime;
    if (value <= absl::ZeroDuration()) {
      return error("limits.max_consent_lifetime", "must be positive");
    }
    directory->max_consent_lifetime_ = value;
  }
  // 0 is the proto3 default: unset, keep the built-in default.
  if (proto.limits().max_attributes_per_consent() > 0) {
    directory->max_attributes_per_consent_ = proto.limits().max_attributes_per_consent();
  }

  if (absl::Status s = CheckSubscriptions(proto, index, error); !s.ok()) return s;
  if (absl::Status s =
          CheckIdentityProviders(proto, error, base_dir, directory->identity_providers_);
      !s.ok()) {
    return s;
  }

  directory->proto_ = std::move(proto);
  directory->agencies_ = std::move(index.agencies);
  directory->attributes_ = std::move(index.attributes);
  directory->purposes_ = std::move(index.purposes);
  return std::shared_ptr<const Directory>(std::move(directory));
}

const tellonce::v1::Agency* Directory::FindAgency(std::string_view id) const {
  auto it = agencies_.find(AsAbsl(id));
  return it == agencies_.end() ? nullptr : &proto_.agencies(it->second);
}

const tellonce::v1::AttributeDef* Directory::FindAttribute(std::string_view name) const {
  auto it = attributes_.find(AsAbsl(name));
  return it == attributes_.end() ? nullptr : &proto_.attributes(it->second);
}

const tellonce::v1::Purpose* Directory::FindPurpose(std::string_view code) const {
  auto it = purposes_.find(AsAbsl(code));
  return it == purposes_.end() ? nullptr : &proto_.purposes(it->second);
}

const tellonce::v1::Mandate* Directory::FindMandate(std::string_view consumer,
                                                    std::string_view purpose,
                                                    std::string_view attribute) const {
  // Directories hold a handful of mandates; a scan beats maintaining another index.
  for (const Mandate& mandate : proto_.mandates()) {
    if (mandate.consumer() != consumer || mandate.purpose() != purpose) continue;
    for (const std::string& name : mandate.attributes()) {
      if (name == attribute) return &mandate;
    }
  }
  return nullptr;
}

bool Directory::HasRole(std::string_view agency_id, tellonce::v1::Role role) const {
  const Agency* agency = FindAgency(agency_id);
  return agency != nullptr && AgencyHasRole(*agency, role);
}

const TrustedIdentityProvider* Directory::FindIdentityProvider(std::string_view issuer) const {
  auto it = identity_providers_.find(AsAbsl(issuer));
  return it == identity_providers_.end() ? nullptr : &it->second;
}

absl::StatusOr<certs::VerifiedCitizenAssertion> Directory::VerifyCitizenAssertion(
    std::string_view portal_id, std::string_view token, std::string_view citizen_id,
    absl::Time now) const {
  const Agency* portal = FindAgency(portal_id);
  if (portal == nullptr || !AgencyHasRole(*portal, tellonce::v1::PORTAL)) {
    return absl::PermissionDeniedError("caller: not an agency with the portal role");
  }
  if (token.empty()) {
    return absl::UnauthenticatedError(
        "citizen assertion: missing; send the citizen's ID token in the "
        "tellonce-citizen-assertion request metadata");
  }
  absl::StatusOr<std::string> issuer = certs::UnverifiedIssuer(token);
  if (!issuer.ok()) return issuer.status();
  const TrustedIdentityProvider* provider = nullptr;
  for (const std::string& trusted : portal->citizen_identity_providers()) {
    if (trusted == *issuer) provider = FindIdentityProvider(trusted);
  }
  if (provider == nullptr) {
    return absl::UnauthenticatedError(
        "citizen assertion: iss: not an identity provider this portal uses");
  }
  certs::CitizenAssertionPolicy policy;
  policy.issuer = provider->issuer;
  policy.audience = portal->portal_client_id();
  policy.algorithms = provider->algorithms;
  policy.citizen_claim = provider->citizen_claim;
  policy.max_age = provider->max_age;
  return certs::VerifyCitizenAssertion(token, provider->keys, policy, citizen_id, now);
}

absl::Status Directory::CheckCitizenId(std::string_view citizen_id) const {
  if (citizen_id.empty()) return absl::InvalidArgumentError("citizen_id: required");
  if (citizen_id.size() > kMaxCitizenIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("citizen_id: longer than ", kMaxCitizenIdLength, " characters"));
  }
  if (!IsVisibleAscii(citizen_id)) {
    return absl::InvalidArgumentError("citizen_id: must be printable ASCII without spaces");
  }
  if (citizen_pattern_ != nullptr) {
    if (!re2::RE2::FullMatch(re2::StringPiece(citizen_id.data(), citizen_id.size()),
                             *citizen_pattern_)) {
      return absl::InvalidArgumentError("citizen_id: does not match the configured pattern");
    }
  }
  bool checksum_ok = true;
  switch (proto_.citizen_id_rule().checksum()) {
    case CitizenIdRule::LUHN:
      checksum_ok = LuhnValid(citizen_id);
      break;
    case CitizenIdRule::ESTONIAN_ISIKUKOOD:
      checksum_ok = EstonianIsikukoodValid(citizen_id);
      break;
    default:
      break;
  }
  if (!checksum_ok) return absl::InvalidArgumentError("citizen_id: checksum does not verify");
  return absl::OkStatus();
}

bool LuhnValid(std::string_view digits) {
  // One digit is all check digit and nothing to check.
  if (digits.size() < 2) return false;
  int sum = 0;
  bool double_it = false;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (!absl::ascii_isdigit(*it)) return false;
    int d = *it - '0';
    if (double_it) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum = (sum + d) % 10;
    double_it = !double_it;
  }
  return sum == 0;
}

bool EstonianIsikukoodValid(std::string_view digits) {
  if (digits.size() != 11) return false;
  if (!std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit)) return false;
  static constexpr int kFirstWeights[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1};
  static constexpr int kSecondWeights[10] = {3, 4, 5, 6, 7, 8, 9, 1, 2, 3};
  auto remainder = [&](const int(&weights)[10]) {
    int sum = 0;
    for (int i = 0; i < 10; ++i) sum += (digits[i] - '0') * weights[i];
    return sum % 11;
  };
  int check = remainder(kFirstWeights);
  if (check == 10) {
    check = remainder(kSecondWeights);
    if (check == 10) check = 0;
  }
  return check == digits[10] - '0';
}

}  // namespace tellonce::consent
