#include "consent/directory.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certs/citizen_assertion.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tellonce::consent {
namespace {

using ::tellonce::v1::CitizenIdRule;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// The repository root: TELLONCE_SOURCE_DIR under CTest, else derived from this file.
std::string SourceDir() {
  if (const char* dir = std::getenv("TELLONCE_SOURCE_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  std::string file = __FILE__;
  return file.substr(0, file.rfind("/tests/unit/"));
}

// A file in the test's temporary directory, removed at destruction.
class TempFile {
 public:
  TempFile(const std::string& name, const std::string& content) {
    const char* tmp = std::getenv("TEST_TMPDIR");
    path_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, ".", getpid());
    std::ofstream(path_) << content;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A JWK Set of a fresh identity provider key, written once per test binary.
const std::string& TestJwksFile() {
  static const std::string* path = [] {
    absl::StatusOr<certs::CitizenAssertionSigner> signer =
        certs::CitizenAssertionSigner::GenerateEs256("idp-1");
    const char* tmp = std::getenv("TEST_TMPDIR");
    auto* p = new std::string(absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/jwks.", getpid()));
    std::ofstream(*p) << (signer.ok() ? signer->JwksJson() : "");
    return p;
  }();
  return *path;
}

// A small valid directory; each table row below breaks one thing in it.
tellonce::v1::Directory ValidProto() {
  tellonce::v1::Directory d;
  d.set_trust_domain("gov.example");
  auto* registry = d.add_agencies();
  registry->set_id("registry");
  registry->add_roles(tellonce::v1::PROVIDER);
  registry->set_connector_endpoint("registry.gov.example:443");
  auto* tax = d.add_agencies();
  tax->set_id("tax");
  tax->add_roles(tellonce::v1::CONSUMER);
  tax->set_connector_endpoint("[::1]:7503");
  auto* portal = d.add_agencies();
  portal->set_id("portal");
  portal->add_roles(tellonce::v1::PORTAL);
  portal->set_portal_client_id("portal-client");
  portal->add_citizen_identity_providers("https://eid.gov.example");
  auto* idp = d.add_citizen_identity_providers();
  idp->set_issuer("https://eid.gov.example");
  idp->set_jwks_file(TestJwksFile());
  idp->add_algorithms("ES256");
  auto* name = d.add_attributes();
  name->set_name("person.name");
  name->set_type(tellonce::v1::STRING);
  name->set_provider("registry");
  auto* address = d.add_attributes();
  address->set_name("person.address");
  address->set_type(tellonce::v1::STRING);
  address->set_provider("registry");
  auto* purpose = d.add_purposes();
  purpose->set_code("TAX_ASSESSMENT");
  auto* mandate = d.add_mandates();
  mandate->set_id("income-tax-act");
  mandate->set_consumer("tax");
  mandate->add_attributes("person.name");
  mandate->set_purpose("TAX_ASSESSMENT");
  mandate->set_legal_reference("Income Tax Act s. 1");
  auto* subscription = d.add_subscriptions();
  subscription->set_agency("tax");
  subscription->add_event_types("ADDRESS_CHANGED");
  subscription->add_attributes("person.address");
  return d;
}

TEST(DirectoryTest, SampleFederationDirectoryLoads) {
  // A copy beside a pki/idp/jwks.json, as make-dev-pki lays it out in deploy/local.
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/sample.", getpid());
  std::filesystem::create_directories(dir + "/pki/idp");
  std::filesystem::copy_file(TestJwksFile(), dir + "/pki/idp/jwks.json",
                             std::filesystem::copy_options::overwrite_existing);
  const std::string path = dir + "/directory.textproto";
  std::filesystem::copy_file(SourceDir() + "/deploy/local/directory.textproto", path,
                             std::filesystem::copy_options::overwrite_existing);
  absl::StatusOr<std::shared_ptr<const Directory>> loaded = Directory::LoadFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Directory& d = **loaded;
  EXPECT_EQ(d.trust_domain(), "tellonce.local");
  EXPECT_TRUE(d.HasRole("registry", tellonce::v1::PROVIDER));
  EXPECT_TRUE(d.HasRole("tax", tellonce::v1::CONSUMER));
  EXPECT_TRUE(d.HasRole("portal", tellonce::v1::PORTAL));
  EXPECT_TRUE(d.HasRole("ops", tellonce::v1::ADMIN));
  ASSERT_NE(d.FindAttribute("bank.interest_paid"), nullptr);
  EXPECT_EQ(d.FindAttribute("bank.interest_paid")->provider(), "bank");
  EXPECT_EQ(d.FindAttribute("person.date_of_birth")->type(), tellonce::v1::DATE);
  EXPECT_NE(d.FindPurpose("TAX_DEDUCTION_CHECK"), nullptr);
  EXPECT_NE(d.FindMandate("tax", "TAX_ASSESSMENT", "person.name"), nullptr);
  EXPECT_EQ(d.max_consent_lifetime(), absl::Hours(24 * 365));
  EXPECT_EQ(d.max_attributes_per_consent(), 32u);
  EXPECT_TRUE(d.CheckCitizenId("37605030299").ok());
  EXPECT_FALSE(d.CheckCitizenId("37605030298").ok());
}

TEST(DirectoryTest, ValidProtoIsAccepted) {
  absl::StatusOr<std::shared_ptr<const Directory>> d = Directory::FromProto(ValidProto());
  ASSERT_TRUE(d.ok()) << d.status();
}

TEST(DirectoryTest, LookupsFindWhatIsConfiguredAndNothingElse) {
  auto d = Directory::FromProto(ValidProto());
  ASSERT_TRUE(d.ok()) << d.status();
  const Directory& dir = **d;
  ASSERT_NE(dir.FindAgency("tax"), nullptr);
  EXPECT_EQ(dir.FindAgency("tax")->id(), "tax");
  EXPECT_EQ(dir.FindAgency("bank"), nullptr);
  ASSERT_NE(dir.FindAttribute("person.address"), nullptr);
  EXPECT_EQ(dir.FindAttribute("person.address")->provider(), "registry");
  EXPECT_EQ(dir.FindAttribute("person"), nullptr);
  EXPECT_NE(dir.FindPurpose("TAX_ASSESSMENT"), nullptr);
  EXPECT_EQ(dir.FindPurpose("tax_assessment"), nullptr);
  EXPECT_TRUE(dir.HasRole("tax", tellonce::v1::CONSUMER));
  EXPECT_FALSE(dir.HasRole("tax", tellonce::v1::PROVIDER));
  EXPECT_FALSE(dir.HasRole("nobody", tellonce::v1::CONSUMER));
}

TEST(DirectoryTest, FindMandateNeedsConsumerPurposeAndAttributeToMatch) {
  auto d = Directory::FromProto(ValidProto());
  ASSERT_TRUE(d.ok()) << d.status();
  const tellonce::v1::Mandate* m = (*d)->FindMandate("tax", "TAX_ASSESSMENT", "person.name");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->id(), "income-tax-act");
  EXPECT_EQ((*d)->FindMandate("tax", "TAX_ASSESSMENT", "person.address"), nullptr);
  EXPECT_EQ((*d)->FindMandate("portal", "TAX_ASSESSMENT", "person.name"), nullptr);
  EXPECT_EQ((*d)->FindMandate("tax", "OTHER", "person.name"), nullptr);
}

TEST(DirectoryTest, LimitsDefaultWhenUnsetAndFollowTheProtoWhenSet) {
  auto defaults = Directory::FromProto(ValidProto());
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ((*defaults)->max_consent_lifetime(), absl::Hours(24 * 365));
  EXPECT_EQ((*defaults)->max_attributes_per_consent(), 32u);

  tellonce::v1::Directory proto = ValidProto();
  proto.mutable_limits()->mutable_max_consent_lifetime()->set_seconds(3600);
  proto.mutable_limits()->set_max_attributes_per_consent(4);
  auto set = Directory::FromProto(proto);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ((*set)->max_consent_lifetime(), absl::Hours(1));
  EXPECT_EQ((*set)->max_attributes_per_consent(), 4u);
}

// A sub-second max_age used to be cut to whole seconds (0.5 s became 0: every token
// too old).
TEST(DirectoryTest, IdentityProviderMaxAgeKeepsItsNanoseconds) {
  tellonce::v1::Directory proto = ValidProto();
  proto.mutable_citizen_identity_providers(0)->mutable_max_age()->set_seconds(90);
  proto.mutable_citizen_identity_providers(0)->mutable_max_age()->set_nanos(500'000'000);
  auto d = Directory::FromProto(proto);
  ASSERT_TRUE(d.ok()) << d.status();
  const TrustedIdentityProvider* idp = (*d)->FindIdentityProvider("https://eid.gov.example");
  ASSERT_NE(idp, nullptr);
  EXPECT_EQ(idp->max_age, absl::Milliseconds(90'500));

  proto.mutable_citizen_identity_providers(0)->mutable_max_age()->set_seconds(0);
  d = Directory::FromProto(proto);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->FindIdentityProvider("https://eid.gov.example")->max_age,
            absl::Milliseconds(500));
}

struct ContentCase {
  std::string name;
  std::function<void(tellonce::v1::Directory&)> mutate;
  // The whole message after "test: ", or a prefix of it ending in ": ".
  std::string expected;
};

class DirectoryContentTest : public ::testing::TestWithParam<ContentCase> {};

TEST_P(DirectoryContentTest, IsRefusedNamingTheField) {
  tellonce::v1::Directory proto = ValidProto();
  GetParam().mutate(proto);
  absl::StatusOr<std::shared_ptr<const Directory>> d = Directory::FromProto(proto, "test");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()), StartsWith("test: " + GetParam().expected));
}

using D = tellonce::v1::Directory;

INSTANTIATE_TEST_SUITE_P(
    Rules, DirectoryContentTest,
    ::testing::Values(
        ContentCase{"TrustDomainMissing", [](D& d) { d.clear_trust_domain(); },
                    "trust_domain: required"},
        ContentCase{"TrustDomainUpperCase", [](D& d) { d.set_trust_domain("Gov.Example"); },
                    "trust_domain: "},
        ContentCase{"TrustDomainEmptyLabel", [](D& d) { d.set_trust_domain("gov..example"); },
                    "trust_domain: "},
        ContentCase{"TrustDomainLabelEndsWithDash",
                    [](D& d) { d.set_trust_domain("gov-.example"); }, "trust_domain: "},
        ContentCase{"TrustDomainWithScheme",
                    [](D& d) { d.set_trust_domain("spiffe://gov.example"); }, "trust_domain: "},
        ContentCase{"AgencyIdMissing", [](D& d) { d.mutable_agencies(1)->clear_id(); },
                    "agencies[1].id: required"},
        ContentCase{"AgencyIdUpperCase", [](D& d) { d.mutable_agencies(1)->set_id("Tax"); },
                    "agencies[1].id: must match"},
        ContentCase{"AgencyIdStartsWithDash", [](D& d) { d.mutable_agencies(1)->set_id("-tax"); },
                    "agencies[1].id: must match"},
        ContentCase{"AgencyIdTooLong",
                    [](D& d) { d.mutable_agencies(2)->set_id(std::string(64, 'a')); },
                    "agencies[2].id: must match"},
        ContentCase{"AgencyIdDuplicate", [](D& d) { d.mutable_agencies(2)->set_id("tax"); },
                    "agencies[2].id: duplicate agency id \"tax\""},
        ContentCase{"AgencyWithoutRole", [](D& d) { d.mutable_agencies(2)->clear_roles(); },
                    "agencies[2].roles: at least one role is required"},
        ContentCase{"AgencyRoleUnspecified",
                    [](D& d) { d.mutable_agencies(2)->add_roles(tellonce::v1::ROLE_UNSPECIFIED); },
                    "agencies[2].roles[1]: must not be ROLE_UNSPECIFIED"},
        ContentCase{"AgencyRoleUnknownValue",
                    [](D& d) { d.mutable_agencies(2)->add_roles(static_cast<tellonce::v1::Role>(42)); },
                    "agencies[2].roles[1]: unknown role 42"},
        ContentCase{"AgencyRoleDuplicate",
                    [](D& d) { d.mutable_agencies(2)->add_roles(tellonce::v1::PORTAL); },
                    "agencies[2].roles[1]: duplicate role PORTAL"},
        ContentCase{"ProviderWithoutConnector",
                    [](D& d) { d.mutable_agencies(0)->clear_connector_endpoint(); },
                    "agencies[0].connector_endpoint: required"},
        ContentCase{"ConnectorWithoutPort",
                    [](D& d) { d.mutable_agencies(0)->set_connector_endpoint("registry.example"); },
                    "agencies[0].connector_endpoint: must be host:port"},
        ContentCase{"ConnectorPortOutOfRange",
                    [](D& d) { d.mutable_agencies(0)->set_connector_endpoint("10.0.0.1:65536"); },
                    "agencies[0].connector_endpoint: must be host:port"},
        ContentCase{"ConnectorPortZero",
                    [](D& d) { d.mutable_agencies(0)->set_connector_endpoint("10.0.0.1:0"); },
                    "agencies[0].connector_endpoint: must be host:port"},
        ContentCase{"ConnectorWithScheme",
                    [](D& d) {
                      d.mutable_agencies(0)->set_connector_endpoint("dns:///registry:443");
                    },
                    "agencies[0].connector_endpoint: must be host:port"},
        ContentCase{"ConnectorUnbracketedIpv6",
                    [](D& d) { d.mutable_agencies(1)->set_connector_endpoint("::1:7503"); },
                    "agencies[1].connector_endpoint: must be host:port"},
        ContentCase{"ConnectorOfNonProviderStillChecked",
                    [](D& d) { d.mutable_agencies(2)->set_connector_endpoint("portal"); },
                    "agencies[2].connector_endpoint: must be host:port"},
        ContentCase{"AttributeNameMissing", [](D& d) { d.mutable_attributes(1)->clear_name(); },
                    "attributes[1].name: required"},
        ContentCase{"AttributeNameWithoutDot",
                    [](D& d) { d.mutable_attributes(1)->set_name("address"); },
                    "attributes[1].name: must match"},
        ContentCase{"AttributeNameUpperCase",
                    [](D& d) { d.mutable_attributes(1)->set_name("person.Address"); },
                    "attributes[1].name: must match"},
        ContentCase{"AttributeNameTrailingDot",
                    [](D& d) { d.mutable_attributes(1)->set_name("person."); },
                    "attributes[1].name: must match"},
        ContentCase{"AttributeNameSegmentStartsWithDigit",
                    [](D& d) { d.mutable_attributes(1)->set_name("person.2nd_name"); },
                    "attributes[1].name: must match"},
        ContentCase{"AttributeNameDuplicate",
                    [](D& d) { d.mutable_attributes(1)->set_name("person.name"); },
                    "attributes[1].name: duplicate attribute \"person.name\""},
        ContentCase{"AttributeTypeUnspecified",
                    [](D& d) { d.mutable_attributes(1)->clear_type(); },
                    "attributes[1].type: must not be ATTRIBUTE_TYPE_UNSPECIFIED"},
        ContentCase{"AttributeProviderMissing",
                    [](D& d) { d.mutable_attributes(1)->clear_provider(); },
                    "attributes[1].provider: required"},
        ContentCase{"AttributeProviderUnknown",
                    [](D& d) { d.mutable_attributes(1)->set_provider("bnk"); },
                    "attributes[1].provider: unknown agency \"bnk\""},
        ContentCase{"AttributeProviderWithoutProviderRole",
                    [](D& d) { d.mutable_attributes(1)->set_provider("tax"); },
                    "attributes[1].provider: agency \"tax\" does not have the provider role"},
        ContentCase{"PurposeCodeMissing", [](D& d) { d.mutable_purposes(0)->clear_code(); },
                    "purposes[0].code: required"},
        ContentCase{"PurposeCodeLowerCase",
                    [](D& d) { d.mutable_purposes(0)->set_code("tax_assessment"); },
                    "purposes[0].code: must match"},
        ContentCase{"PurposeCodeTooLong",
                    [](D& d) { d.mutable_purposes(0)->set_code(std::string(65, 'A')); },
                    "purposes[0].code: must match"},
        ContentCase{"PurposeCodeDuplicate",
                    [](D& d) { d.add_purposes()->set_code("TAX_ASSESSMENT"); },
                    "purposes[1].code: duplicate purpose \"TAX_ASSESSMENT\""},
        ContentCase{"MandateIdMissing", [](D& d) { d.mutable_mandates(0)->clear_id(); },
                    "mandates[0].id: required"},
        ContentCase{"MandateIdDuplicate",
                    [](D& d) { *d.add_mandates() = d.mandates(0); },
                    "mandates[1].id: duplicate mandate id \"income-tax-act\""},
        ContentCase{"MandateConsumerUnknown",
                    [](D& d) { d.mutable_mandates(0)->set_consumer("police"); },
                    "mandates[0].consumer: unknown agency \"police\""},
        ContentCase{"MandateConsumerWithoutConsumerRole",
                    [](D& d) { d.mutable_mandates(0)->set_consumer("registry"); },
                    "mandates[0].consumer: agency \"registry\" does not have the consumer role"},
        ContentCase{"MandateWithoutAttributes",
                    [](D& d) { d.mutable_mandates(0)->clear_attributes(); },
                    "mandates[0].attributes: at least one attribute is required"},
        ContentCase{"MandateAttributeUnknown",
                    [](D& d) { d.mutable_mandates(0)->add_attributes("person.shoe_size"); },
                    "mandates[0].attributes[1]: unknown attribute \"person.shoe_size\""},
        ContentCase{"MandateAttributeDuplicate",
                    [](D& d) { d.mutable_mandates(0)->add_attributes("person.name"); },
                    "mandates[0].attributes[1]: duplicate attribute"},
        ContentCase{"MandatePurposeMissing", [](D& d) { d.mutable_mandates(0)->clear_purpose(); },
                    "mandates[0].purpose: required"},
        ContentCase{"MandatePurposeUnknown",
                    [](D& d) { d.mutable_mandates(0)->set_purpose("CURIOSITY"); },
                    "mandates[0].purpose: unknown purpose \"CURIOSITY\""},
        ContentCase{"MandateWithoutLegalReference",
                    [](D& d) { d.mutable_mandates(0)->set_legal_reference("  "); },
                    "mandates[0].legal_reference: required"},
        ContentCase{"CitizenPatternDoesNotCompile",
                    [](D& d) { d.mutable_citizen_id_rule()->set_pattern("[0-9"); },
                    "citizen_id_rule.pattern: does not compile"},
        ContentCase{"CitizenChecksumUnknownValue",
                    [](D& d) {
                      d.mutable_citizen_id_rule()->set_checksum(
                          static_cast<CitizenIdRule::Checksum>(9));
                    },
                    "citizen_id_rule.checksum: "},
        ContentCase{"LifetimeZero",
                    [](D& d) { d.mutable_limits()->mutable_max_consent_lifetime(); },
                    "limits.max_consent_lifetime: must be positive"},
        ContentCase{"LifetimeNegative",
                    [](D& d) {
                      d.mutable_limits()->mutable_max_consent_lifetime()->set_seconds(-60);
                    },
                    "limits.max_consent_lifetime: must be positive"},
        ContentCase{"LifetimeMalformed",
                    [](D& d) {
                      auto* l = d.mutable_limits()->mutable_max_consent_lifetime();
                      l->set_seconds(60);
                      l->set_nanos(-5);
                    },
                    "limits.max_consent_lifetime: not a valid duration"},
        ContentCase{"SubscriptionAgencyMissing",
                    [](D& d) { d.mutable_subscriptions(0)->clear_agency(); },
                    "subscriptions[0].agency: required"},
        ContentCase{"SubscriptionAgencyUnknown",
                    [](D& d) { d.mutable_subscriptions(0)->set_agency("police"); },
                    "subscriptions[0].agency: unknown agency \"police\""},
        ContentCase{"SubscriptionAgencyWithoutConsumerRole",
                    [](D& d) { d.mutable_subscriptions(0)->set_agency("registry"); },
                    "subscriptions[0].agency: agency \"registry\" does not have the consumer role"},
        ContentCase{"SubscriptionAgencyWithoutConnector",
                    [](D& d) { d.mutable_agencies(1)->clear_connector_endpoint(); },
                    "subscriptions[0].agency: agency \"tax\" has no connector_endpoint"},
        ContentCase{"SubscriptionWithoutEventTypes",
                    [](D& d) { d.mutable_subscriptions(0)->clear_event_types(); },
                    "subscriptions[0].event_types: at least one event type is required"},
        ContentCase{"SubscriptionEventTypeMalformed",
                    [](D& d) { d.mutable_subscriptions(0)->add_event_types("address changed"); },
                    "subscriptions[0].event_types[1]: must match"},
        ContentCase{"SubscriptionWithoutAttributes",
                    [](D& d) { d.mutable_subscriptions(0)->clear_attributes(); },
                    "subscriptions[0].attributes: at least one attribute is required"},
        ContentCase{"PortalThatIsAlsoAConsumer",
                    [](D& d) { d.mutable_agencies(2)->add_roles(tellonce::v1::CONSUMER); },
                    "agencies[2].roles: an agency cannot be both PORTAL and CONSUMER"},
        ContentCase{"PortalWithoutClientId",
                    [](D& d) { d.mutable_agencies(2)->clear_portal_client_id(); },
                    "agencies[2].portal_client_id: required"},
        ContentCase{"PortalWithoutIdentityProvider",
                    [](D& d) { d.mutable_agencies(2)->clear_citizen_identity_providers(); },
                    "agencies[2].citizen_identity_providers: at least one is required"},
        ContentCase{"PortalWithUnknownIdentityProvider",
                    [](D& d) { d.mutable_agencies(2)->set_citizen_identity_providers(0, "x"); },
                    "agencies[2].citizen_identity_providers[0]: unknown identity provider"},
        ContentCase{"ClientIdOnANonPortal",
                    [](D& d) { d.mutable_agencies(1)->set_portal_client_id("c"); },
                    "agencies[1].portal_client_id: only for an agency with the portal role"},
        ContentCase{"IdentityProviderAlgorithmNone",
                    [](D& d) { d.mutable_citizen_identity_providers(0)->add_algorithms("none"); },
                    "citizen_identity_providers[0].algorithms[1]: must be \"ES256\" or \"RS256\""},
        ContentCase{"IdentityProviderAlgorithmHmac",
                    [](D& d) { d.mutable_citizen_identity_providers(0)->set_algorithms(0, "HS256"); },
                    "citizen_identity_providers[0].algorithms[0]: must be"},
        ContentCase{"IdentityProviderWithoutAlgorithms",
                    [](D& d) { d.mutable_citizen_identity_providers(0)->clear_algorithms(); },
                    "citizen_identity_providers[0].algorithms: at least one"},
        ContentCase{"IdentityProviderJwksMissing",
                    [](D& d) {
                      d.mutable_citizen_identity_providers(0)->set_jwks_file("/nonexistent/j");
                    },
                    "citizen_identity_providers[0].jwks_file: /nonexistent/j: cannot open"},
        ContentCase{"IdentityProviderDuplicate",
                    [](D& d) {
                      *d.add_citizen_identity_providers() = d.citizen_identity_providers(0);
                    },
                    "citizen_identity_providers[1].issuer: duplicate issuer"},
        ContentCase{"IdentityProviderMaxAgeTooLong",
                    [](D& d) {
                      d.mutable_citizen_identity_providers(0)->mutable_max_age()->set_seconds(
                          2 * 86400);
                    },
                    "citizen_identity_providers[0].max_age: must be positive and at most 24 hours"},
        ContentCase{"SubscriptionAttributeUnknown",
                    [](D& d) { d.mutable_subscriptions(0)->set_attributes(0, "person.adress"); },
                    "subscriptions[0].attributes[0]: unknown attribute \"person.adress\""}),
    [](const ::testing::TestParamInfo<ContentCase>& info) { return info.param.name; });

TEST(DirectoryTest, ContentErrorInAFileNamesTheFileAndField) {
  TempFile file("bad_provider.textproto", R"(
trust_domain: "gov.example"
agencies { id: "bank" roles: PROVIDER connector_endpoint: "127.0.0.1:1" }
attributes { name: "bank.iban" type: STRING provider: "bnk" }
)");
  auto d = Directory::LoadFile(file.path());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status().message(),
            absl::StrCat(file.path(), ": attributes[0].provider: unknown agency \"bnk\""));
}

TEST(DirectoryTest, SyntaxErrorReportsFileAndLine) {
  TempFile file("syntax.textproto",
                "trust_domain: \"gov.example\"\n"
                "agencies {\n"
                "  id: \"tax\"\n"
                "  roles CONSUMER\n"  // scalar fields need ':'
                "}\n");
  auto d = Directory::LoadFile(file.path());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()), StartsWith(file.path() + ":4:"));
}

TEST(DirectoryTest, UnknownFieldReportsFileAndLine) {
  TempFile file("unknown_field.textproto",
                "trust_domain: \"gov.example\"\n"
                "\n"
                "agency { id: \"tax\" }\n");
  auto d = Directory::LoadFile(file.path());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()), StartsWith(file.path() + ":3:"));
}

TEST(DirectoryTest, MissingFileIsNotFound) {
  auto d = Directory::LoadFile("/nonexistent/tellonce/directory.textproto");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
}

// --- Citizen ids -------------------------------------------------------------------

std::shared_ptr<const Directory> WithRule(std::string pattern, CitizenIdRule::Checksum checksum) {
  tellonce::v1::Directory proto = ValidProto();
  proto.mutable_citizen_id_rule()->set_pattern(std::move(pattern));
  proto.mutable_citizen_id_rule()->set_checksum(checksum);
  auto d = Directory::FromProto(std::move(proto));
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *d : nullptr;
}

TEST(CitizenIdTest, EstonianRuleAcceptsValidCodes) {
  auto d = WithRule("[1-6][0-9]{10}", CitizenIdRule::ESTONIAN_ISIKUKOOD);
  ASSERT_NE(d, nullptr);
  for (const char* id : {"37605030299", "49403136526", "33170669072", "37546313410"}) {
    EXPECT_TRUE(d->CheckCitizenId(id).ok()) << id;
  }
}

TEST(CitizenIdTest, PatternMismatchIsRefusedWithoutEchoingTheId) {
  auto d = WithRule("[1-6][0-9]{10}", CitizenIdRule::ESTONIAN_ISIKUKOOD);
  ASSERT_NE(d, nullptr);
  for (const char* id : {"77605030299", "3760503029", "376050302999", "3760503029X"}) {
    absl::Status s = d->CheckCitizenId(id);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << id;
    EXPECT_EQ(s.message(), "citizen_id: does not match the configured pattern") << id;
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr(id)));
  }
}

TEST(CitizenIdTest, ChecksumFailureIsRefusedWithoutEchoingTheId) {
  auto d = WithRule("[1-6][0-9]{10}", CitizenIdRule::ESTONIAN_ISIKUKOOD);
  ASSERT_NE(d, nullptr);
  absl::Status s = d->CheckCitizenId("37605030298");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "citizen_id: checksum does not verify");
}

TEST(CitizenIdTest, LuhnRuleChecksTheCheckDigit) {
  auto d = WithRule("", CitizenIdRule::LUHN);
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->CheckCitizenId("79927398713").ok());
  EXPECT_EQ(d->CheckCitizenId("79927398710").message(), "citizen_id: checksum does not verify");
  EXPECT_EQ(d->CheckCitizenId("7992-7398713").message(), "citizen_id: checksum does not verify");
}

TEST(CitizenIdTest, WithoutRuleAnyShortPrintableIdIsAccepted) {
  auto d = WithRule("", CitizenIdRule::NONE);
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->CheckCitizenId("ABC-123/x").ok());
  EXPECT_TRUE(d->CheckCitizenId(std::string(64, 'z')).ok());
  EXPECT_EQ(d->CheckCitizenId("").message(), "citizen_id: required");
  EXPECT_EQ(d->CheckCitizenId(std::string(65, 'z')).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d->CheckCitizenId("abc\n").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d->CheckCitizenId("ab c").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d->CheckCitizenId(std::string("ab\0c", 4)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d->CheckCitizenId("p\xc3\xa4"
                              "ev")
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CitizenIdTest, HugeInputIsRefusedBeforeTheRegexRuns) {
  // A pattern that would recurse deeply on long input; the length cap must stop it first.
  auto d = WithRule("(a|aa)*", CitizenIdRule::NONE);
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->CheckCitizenId(std::string(64, 'a')).ok());
  absl::Status s = d->CheckCitizenId(std::string(1 << 20, 'a'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("citizen_id: longer than 64"));
}

// Issue 13: std::regex backtracked exponentially ("0.44 s at 24 digits, four times
// slower per two more digits"). RE2 matches in linear time, so an adversarial id just
// under the length cap, and a 10 KB one, are answered at once and correctly.
TEST(CitizenIdTest, AdversarialIdsAgainstABacktrackingPatternAreRefusedInLinearTime) {
  auto d = WithRule("([0-9]+)+[a-z]", CitizenIdRule::NONE);
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->CheckCitizenId("123456a").ok());
  const auto started = std::chrono::steady_clock::now();
  absl::Status near_cap = d->CheckCitizenId(std::string(64, '7'));
  absl::Status ten_kb = d->CheckCitizenId(std::string(10 * 1024, '7'));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(near_cap.message(), "citizen_id: does not match the configured pattern");
  EXPECT_THAT(std::string(ten_kb.message()), StartsWith("citizen_id: longer than 64"));
  // Reported, not asserted (benchmarks do not decide pass or fail on a noisy machine).
  std::printf("adversarial citizen ids checked in %.6f s\n", seconds);
}

TEST(CitizenIdTest, PatternsRe2CannotRunInLinearTimeAreRefusedAtLoad) {
  // Backreferences need backtracking; RE2 does not compile them.
  tellonce::v1::Directory proto = ValidProto();
  proto.mutable_citizen_id_rule()->set_pattern("([0-9])\\1");
  absl::StatusOr<std::shared_ptr<const Directory>> d = Directory::FromProto(proto);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr("citizen_id_rule.pattern: does not compile"));
}

TEST(CitizenIdTest, PatternMustMatchTheWholeId) {
  auto d = WithRule("[0-9]{3}", CitizenIdRule::NONE);
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->CheckCitizenId("123").ok());
  EXPECT_FALSE(d->CheckCitizenId("1234").ok());
  EXPECT_FALSE(d->CheckCitizenId("x123").ok());
}

// --- Checksum known answers -----------------------------------------------------------

TEST(ChecksumTest, LuhnKnownAnswers) {
  EXPECT_TRUE(LuhnValid("79927398713"));
  EXPECT_TRUE(LuhnValid("4539578763621486"));
  EXPECT_TRUE(LuhnValid("00"));
  EXPECT_FALSE(LuhnValid("79927398710"));
  EXPECT_FALSE(LuhnValid("79927398731"));  // swapped last two digits
  EXPECT_FALSE(LuhnValid("4539578763621487"));
  EXPECT_FALSE(LuhnValid(""));
  EXPECT_FALSE(LuhnValid("0"));
  EXPECT_FALSE(LuhnValid("7992739871a"));
  EXPECT_FALSE(LuhnValid(" 79927398713"));
}

TEST(ChecksumTest, EstonianKnownAnswers) {
  EXPECT_TRUE(EstonianIsikukoodValid("37605030299"));
  EXPECT_TRUE(EstonianIsikukoodValid("49403136526"));
  EXPECT_FALSE(EstonianIsikukoodValid("37605030290"));
  EXPECT_FALSE(EstonianIsikukoodValid("49403136527"));
}

TEST(ChecksumTest, EstonianUsesTheSecondPassWhenTheFirstGivesTen) {
  // First pass: remainder 10; second pass: remainder 2.
  EXPECT_TRUE(EstonianIsikukoodValid("33170669072"));
  EXPECT_FALSE(EstonianIsikukoodValid("33170669070"));
  // Both passes give 10: the check digit is 0.
  EXPECT_TRUE(EstonianIsikukoodValid("37546313410"));
  EXPECT_FALSE(EstonianIsikukoodValid("37546313411"));
}

TEST(ChecksumTest, EstonianRequiresExactlyElevenDigits) {
  EXPECT_FALSE(EstonianIsikukoodValid(""));
  EXPECT_FALSE(EstonianIsikukoodValid("3760503029"));
  EXPECT_FALSE(EstonianIsikukoodValid("376050302990"));
  EXPECT_FALSE(EstonianIsikukoodValid("3760503029a"));
  EXPECT_FALSE(EstonianIsikukoodValid("3760503029 "));
}

}  // namespace
}  // namespace tellonce::consent
