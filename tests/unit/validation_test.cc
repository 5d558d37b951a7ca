#include "consent/validation.h"

#include <functional>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace tellonce::consent {
namespace {

using ::tellonce::v1::GetConsentRequest;
using ::tellonce::v1::GrantConsentRequest;
using ::tellonce::v1::ListConsentsRequest;
using ::tellonce::v1::RevokeConsentRequest;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kCitizen[] = "37605030299";
constexpr char kConsentId[] = "01HZX3J5Q7R8S9T0V1W2X3Y4Z5";
const absl::Time kNow = absl::FromUnixSeconds(1'750'000'000);  // 2025-06-15

// Estonian ids, three attributes at most, lifetime 30 days.
std::shared_ptr<const Directory> TestDirectory() {
  tellonce::v1::Directory d;
  d.set_trust_domain("gov.example");
  auto* registry = d.add_agencies();
  registry->set_id("registry");
  registry->add_roles(tellonce::v1::PROVIDER);
  registry->set_connector_endpoint("127.0.0.1:7501");
  auto* bank = d.add_agencies();
  bank->set_id("bank");
  bank->add_roles(tellonce::v1::PROVIDER);
  bank->set_connector_endpoint("127.0.0.1:7502");
  auto* tax = d.add_agencies();
  tax->set_id("tax");
  tax->add_roles(tellonce::v1::CONSUMER);
  for (const char* name :
       {"person.name", "person.address", "person.date_of_birth", "person.email"}) {
    auto* a = d.add_attributes();
    a->set_name(name);
    a->set_type(tellonce::v1::STRING);
    a->set_provider("registry");
  }
  d.add_purposes()->set_code("TAX_ASSESSMENT");
  d.mutable_citizen_id_rule()->set_pattern("[1-6][0-9]{10}");
  d.mutable_citizen_id_rule()->set_checksum(tellonce::v1::CitizenIdRule::ESTONIAN_ISIKUKOOD);
  d.mutable_limits()->mutable_max_consent_lifetime()->set_seconds(30 * 24 * 3600);
  d.mutable_limits()->set_max_attributes_per_consent(3);
  auto directory = Directory::FromProto(std::move(d));
  EXPECT_TRUE(directory.ok()) << directory.status();
  return directory.ok() ? *directory : nullptr;
}

google::protobuf::Timestamp At(absl::Time t) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(t));
  ts.set_nanos(
      static_cast<int32_t>((t - absl::FromUnixSeconds(ts.seconds())) / absl::Nanoseconds(1)));
  return ts;
}

GrantConsentRequest ValidGrant() {
  GrantConsentRequest r;
  r.set_request_id("req-1");
  r.set_citizen_id(kCitizen);
  r.set_consumer("tax");
  r.add_attributes("person.name");
  r.add_attributes("person.address");
  r.set_purpose("TAX_ASSESSMENT");
  *r.mutable_valid_from() = At(kNow);
  *r.mutable_expires_at() = At(kNow + absl::Hours(24 * 7));
  r.set_mode(tellonce::v1::UNTIL_EXPIRY);
  return r;
}

class ValidationTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(directory_, nullptr); }
  std::shared_ptr<const Directory> directory_ = TestDirectory();
  RequestLimits limits_;
};

// --- Grant -------------------------------------------------------------------------

struct GrantCase {
  std::string name;
  std::function<void(GrantConsentRequest&)> mutate;
  // Empty: accepted. Else the expected message, or a prefix of it.
  std::string refusal;
};

class GrantValidationTest : public ::testing::TestWithParam<GrantCase> {};

TEST_P(GrantValidationTest, FollowsTheRule) {
  auto directory = TestDirectory();
  ASSERT_NE(directory, nullptr);
  GrantConsentRequest request = ValidGrant();
  GetParam().mutate(request);
  absl::Status s = ValidateGrant(request, *directory, RequestLimits{}, kNow);
  if (GetParam().refusal.empty()) {
    EXPECT_TRUE(s.ok()) << s;
    return;
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), StartsWith(GetParam().refusal));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr(kCitizen)));
}

using G = GrantConsentRequest;

INSTANTIATE_TEST_SUITE_P(
    Rules, GrantValidationTest,
    ::testing::Values(
        GrantCase{"ValidGrantIsAccepted", [](G&) {}, ""},
        GrantCase{"OneTimeIsAccepted", [](G& r) { r.set_mode(tellonce::v1::ONE_TIME); }, ""},
        // request_id
        GrantCase{"RequestIdMissing", [](G& r) { r.clear_request_id(); }, "request_id: required"},
        GrantCase{"RequestIdAtLimitIsAccepted",
                  [](G& r) { r.set_request_id(std::string(256, 'r')); }, ""},
        GrantCase{"RequestIdTooLong", [](G& r) { r.set_request_id(std::string(257, 'r')); },
                  "request_id: longer than 256 bytes"},
        GrantCase{"RequestIdNotPrintable", [](G& r) { r.set_request_id("req\x01"); },
                  "request_id: must be printable ASCII"},
        GrantCase{"RequestIdWithDelete", [](G& r) { r.set_request_id("req\x7f"); },
                  "request_id: must be printable ASCII"},
        GrantCase{"RequestIdWithSpaceIsAccepted", [](G& r) { r.set_request_id("req 1"); }, ""},
        GrantCase{"RequestIdNotAscii", [](G& r) { r.set_request_id("r\xc3\xa9q"); },
                  "request_id: must be printable ASCII"},
        // citizen_id
        GrantCase{"CitizenIdMissing", [](G& r) { r.clear_citizen_id(); }, "citizen_id: required"},
        GrantCase{"CitizenIdWrongPattern", [](G& r) { r.set_citizen_id("A7605030299"); },
                  "citizen_id: does not match the configured pattern"},
        GrantCase{"CitizenIdWrongChecksum", [](G& r) { r.set_citizen_id("37605030298"); },
                  "citizen_id: checksum does not verify"},
        GrantCase{"CitizenIdHuge", [](G& r) { r.set_citizen_id(std::string(100000, '3')); },
                  "citizen_id: longer than"},
        // consumer
        GrantCase{"ConsumerMissing", [](G& r) { r.clear_consumer(); }, "consumer: required"},
        GrantCase{"ConsumerUnknown", [](G& r) { r.set_consumer("police"); },
                  "consumer: unknown agency \"police\""},
        GrantCase{"ConsumerWithoutConsumerRole", [](G& r) { r.set_consumer("bank"); },
                  "consumer: agency \"bank\" does not have the consumer role"},
        GrantCase{"ConsumerTooLong", [](G& r) { r.set_consumer(std::string(300, 'x')); },
                  "consumer: longer than 256 bytes"},
        // attributes
        GrantCase{"AttributesMissing", [](G& r) { r.clear_attributes(); },
                  "attributes: at least one attribute is required"},
        GrantCase{"AttributesAtLimitAreAccepted",
                  [](G& r) { r.add_attributes("person.date_of_birth"); }, ""},
        GrantCase{"AttributesOverLimit",
                  [](G& r) {
                    r.add_attributes("person.date_of_birth");
                    r.add_attributes("person.email");
                  },
                  "attributes: at most 3 attributes per consent"},
        GrantCase{"AttributeUnknown", [](G& r) { r.set_attributes(1, "person.foo"); },
                  "attributes[1]: unknown attribute \"person.foo\""},
        GrantCase{"AttributeDuplicate", [](G& r) { r.add_attributes("person.name"); },
                  "attributes[2]: duplicate attribute"},
        GrantCase{"AttributeEmpty", [](G& r) { r.set_attributes(0, ""); },
                  "attributes[0]: required"},
        GrantCase{"AttributeNotPrintable", [](G& r) { r.set_attributes(0, "person\n.name"); },
                  "attributes[0]: must be printable ASCII"},
        // purpose
        GrantCase{"PurposeMissing", [](G& r) { r.clear_purpose(); }, "purpose: required"},
        GrantCase{"PurposeUnknown", [](G& r) { r.set_purpose("CURIOSITY"); },
                  "purpose: unknown purpose \"CURIOSITY\""},
        // valid_from
        GrantCase{"ValidFromUnsetMeansNow",
                  [](G& r) {
                    r.clear_valid_from();
                    *r.mutable_expires_at() = At(kNow + absl::Hours(24 * 30));
                  },
                  ""},
        GrantCase{"ValidFromWithinClockSkewIsAccepted",
                  [](G& r) { *r.mutable_valid_from() = At(kNow - absl::Minutes(5)); }, ""},
        GrantCase{"ValidFromInThePast",
                  [](G& r) {
                    *r.mutable_valid_from() = At(kNow - absl::Minutes(5) - absl::Seconds(1));
                  },
                  "valid_from: must not be in the past"},
        GrantCase{"ValidFromInTheFutureIsAccepted",
                  [](G& r) {
                    *r.mutable_valid_from() = At(kNow + absl::Hours(24));
                    *r.mutable_expires_at() = At(kNow + absl::Hours(48));
                  },
                  ""},
        GrantCase{"ValidFromBeyondMaximumLifetime",
                  [](G& r) {
                    *r.mutable_valid_from() = At(kNow + absl::Hours(24 * 30) + absl::Seconds(1));
                    *r.mutable_expires_at() = At(kNow + absl::Hours(24 * 31));
                  },
                  "valid_from: must not be more than 30 days in the future"},
        GrantCase{"ValidFromSecondsOutOfRange",
                  [](G& r) { r.mutable_valid_from()->set_seconds(253402300800); },
                  "valid_from: not a valid timestamp"},
        GrantCase{"ValidFromBeforeYearOne",
                  [](G& r) { r.mutable_valid_from()->set_seconds(-62135596801); },
                  "valid_from: not a valid timestamp"},
        GrantCase{"ValidFromNegativeNanos",
                  [](G& r) { r.mutable_valid_from()->set_nanos(-1); },
                  "valid_from: not a valid timestamp"},
        // expires_at
        GrantCase{"ExpiresAtMissing", [](G& r) { r.clear_expires_at(); },
                  "expires_at: required"},
        GrantCase{"ExpiresAtNanosTooLarge",
                  [](G& r) { r.mutable_expires_at()->set_nanos(1000000000); },
                  "expires_at: not a valid timestamp"},
        GrantCase{"ExpiresAtEqualToValidFrom",
                  [](G& r) { *r.mutable_expires_at() = r.valid_from(); },
                  "expires_at: must be after valid_from"},
        GrantCase{"ExpiresAtBeforeValidFrom",
                  [](G& r) { *r.mutable_expires_at() = At(kNow - absl::Hours(1)); },
                  "expires_at: must be after valid_from"},
        GrantCase{"ExpiresAtInThePast",
                  [](G& r) {
                    *r.mutable_valid_from() = At(kNow - absl::Minutes(4));
                    *r.mutable_expires_at() = At(kNow - absl::Minutes(1));
                  },
                  "expires_at: must be in the future"},
        GrantCase{"LifetimeAtMaximumIsAccepted",
                  [](G& r) { *r.mutable_expires_at() = At(kNow + absl::Hours(24 * 30)); }, ""},
        GrantCase{"LifetimeOverMaximum",
                  [](G& r) {
                    *r.mutable_expires_at() =
                        At(kNow + absl::Hours(24 * 30) + absl::Nanoseconds(1));
                  },
                  "expires_at: lifetime exceeds the maximum of 30 days"},
        // mode
        GrantCase{"ModeUnspecified", [](G& r) { r.clear_mode(); },
                  "mode: must be ONE_TIME or UNTIL_EXPIRY"},
        GrantCase{"ModeUnknownValue",
                  [](G& r) { r.set_mode(static_cast<tellonce::v1::ConsentMode>(7)); },
                  "mode: must be ONE_TIME or UNTIL_EXPIRY"},
        // order: the first failing field in the documented order is reported
        GrantCase{"RequestIdIsCheckedBeforeCitizenId",
                  [](G& r) {
                    r.clear_request_id();
                    r.set_citizen_id("x");
                  },
                  "request_id: "},
        GrantCase{"CitizenIdIsCheckedBeforeConsumer",
                  [](G& r) {
                    r.set_citizen_id("x");
                    r.set_consumer("police");
                  },
                  "citizen_id: "},
        GrantCase{"ConsumerIsCheckedBeforeAttributes",
                  [](G& r) {
                    r.set_consumer("police");
                    r.clear_attributes();
                  },
                  "consumer: "},
        GrantCase{"AttributesAreCheckedBeforePurpose",
                  [](G& r) {
                    r.clear_attributes();
                    r.clear_purpose();
                  },
                  "attributes: "},
        GrantCase{"PurposeIsCheckedBeforeValidFrom",
                  [](G& r) {
                    r.clear_purpose();
                    r.mutable_valid_from()->set_nanos(-1);
                  },
                  "purpose: "},
        GrantCase{"ValidFromIsCheckedBeforeExpiresAt",
                  [](G& r) {
                    r.mutable_valid_from()->set_nanos(-1);
                    r.clear_expires_at();
                  },
                  "valid_from: "},
        GrantCase{"ExpiresAtIsCheckedBeforeMode",
                  [](G& r) {
                    r.clear_expires_at();
                    r.clear_mode();
                  },
                  "expires_at: "}),
    [](const ::testing::TestParamInfo<GrantCase>& info) { return info.param.name; });

TEST_F(ValidationTest, DefaultLifetimeOfTheDirectoryIsNamedInDays) {
  tellonce::v1::Directory proto = directory_->proto();
  proto.clear_limits();
  auto directory = Directory::FromProto(proto);
  ASSERT_TRUE(directory.ok()) << directory.status();
  GrantConsentRequest r = ValidGrant();
  *r.mutable_expires_at() = At(kNow + absl::Hours(24 * 366));
  absl::Status s = ValidateGrant(r, **directory, limits_, kNow);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "expires_at: lifetime exceeds the maximum of 365 days");
}

TEST_F(ValidationTest, SmallerStringLimitApplies) {
  limits_.max_string_bytes = 8;
  GrantConsentRequest r = ValidGrant();
  r.set_request_id("123456789");
  absl::Status s = ValidateGrant(r, *directory_, limits_, kNow);
  EXPECT_EQ(s.message(), "request_id: longer than 8 bytes");
  r.set_request_id("12345678");
  s = ValidateGrant(r, *directory_, limits_, kNow);
  EXPECT_THAT(std::string(s.message()), StartsWith("citizen_id: longer than 8 bytes"));
}

// --- Consent ids -------------------------------------------------------------------

TEST(ConsentIdTest, AcceptsTwentySixCrockfordCharacters) {
  EXPECT_TRUE(IsConsentId(kConsentId));
  EXPECT_TRUE(IsConsentId("0123456789ABCDEFGHJKMNPQRS"));
  EXPECT_TRUE(IsConsentId("TVWXYZ00000000000000000000"));
}

TEST(ConsentIdTest, RefusesOtherShapes) {
  EXPECT_FALSE(IsConsentId(""));
  EXPECT_FALSE(IsConsentId("01HZX3J5Q7R8S9T0V1W2X3Y4Z"));    // 25
  EXPECT_FALSE(IsConsentId("01HZX3J5Q7R8S9T0V1W2X3Y4Z56"));  // 27
  EXPECT_FALSE(IsConsentId("01hzx3j5q7r8s9t0v1w2x3y4z5"));   // lower case
  for (char excluded : {'I', 'L', 'O', 'U', '-', ' '}) {
    std::string id = kConsentId;
    id[5] = excluded;
    EXPECT_FALSE(IsConsentId(id)) << excluded;
  }
}

// --- Revoke, Get, List -------------------------------------------------------------

struct RequestCase {
  std::string name;
  std::function<void(RevokeConsentRequest&, GetConsentRequest&, ListConsentsRequest&)> mutate;
  // Expected refusal prefix per request kind; empty: accepted.
  std::string revoke;
  std::string get;
  std::string list;
};

class ReadValidationTest : public ::testing::TestWithParam<RequestCase> {};

void ExpectOutcome(const absl::Status& s, const std::string& refusal, const char* what) {
  if (refusal.empty()) {
    EXPECT_TRUE(s.ok()) << what << ": " << s;
    return;
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << what << ": " << s;
  EXPECT_THAT(std::string(s.message()), StartsWith(refusal)) << what;
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr(kCitizen))) << what;
}

TEST_P(ReadValidationTest, FollowsTheRule) {
  auto directory = TestDirectory();
  ASSERT_NE(directory, nullptr);
  RevokeConsentRequest revoke;
  revoke.set_consent_id(kConsentId);
  revoke.set_citizen_id(kCitizen);
  revoke.set_reason("changed my mind");
  GetConsentRequest get;
  get.set_consent_id(kConsentId);
  get.set_citizen_id(kCitizen);
  ListConsentsRequest list;
  list.set_citizen_id(kCitizen);
  GetParam().mutate(revoke, get, list);
  RequestLimits limits;
  ExpectOutcome(ValidateRevoke(revoke, *directory, limits), GetParam().revoke, "revoke");
  ExpectOutcome(ValidateGet(get, *directory, limits), GetParam().get, "get");
  ExpectOutcome(ValidateList(list, *directory, limits), GetParam().list, "list");
}

using R = RevokeConsentRequest;
using Q = GetConsentRequest;
using L = ListConsentsRequest;

INSTANTIATE_TEST_SUITE_P(
    Rules, ReadValidationTest,
    ::testing::Values(
        RequestCase{"ValidRequestsAreAccepted", [](R&, Q&, L&) {}, "", "", ""},
        RequestCase{"ConsentIdMissing",
                    [](R& r, Q& q, L&) {
                      r.clear_consent_id();
                      q.clear_consent_id();
                    },
                    "consent_id: required", "consent_id: required", ""},
        RequestCase{"ConsentIdMalformed",
                    [](R& r, Q& q, L&) {
                      r.set_consent_id("01HZX3J5Q7R8S9T0V1W2X3Y4ZU");
                      q.set_consent_id("not-a-consent-id");
                    },
                    "consent_id: not a valid consent id", "consent_id: not a valid consent id",
                    ""},
        RequestCase{"CitizenIdMissing",
                    [](R& r, Q& q, L& l) {
                      r.clear_citizen_id();
                      q.clear_citizen_id();
                      l.clear_citizen_id();
                    },
                    "citizen_id: required", "citizen_id: required", "citizen_id: required"},
        RequestCase{"CitizenIdWrongChecksum",
                    [](R& r, Q& q, L& l) {
                      r.set_citizen_id("37605030298");
                      q.set_citizen_id("37605030298");
                      l.set_citizen_id("37605030298");
                    },
                    "citizen_id: checksum does not verify", "citizen_id: checksum does not verify",
                    "citizen_id: checksum does not verify"},
        RequestCase{"ConsentIdIsCheckedBeforeCitizenId",
                    [](R& r, Q& q, L&) {
                      r.clear_consent_id();
                      r.clear_citizen_id();
                      q.clear_consent_id();
                      q.clear_citizen_id();
                    },
                    "consent_id: ", "consent_id: ", ""},
        RequestCase{"EmptyReasonIsAccepted", [](R& r, Q&, L&) { r.clear_reason(); }, "", "", ""},
        RequestCase{"Utf8ReasonIsAccepted",
                    [](R& r, Q&, L&) { r.set_reason("p\xc3\xa4rast \xe2\x82\xac \xf0\x9f\x98\x80"); },
                    "", "", ""},
        RequestCase{"ReasonAtLimitIsAccepted",
                    [](R& r, Q&, L&) { r.set_reason(std::string(256, 'x')); }, "", "", ""},
        RequestCase{"ReasonTooLong", [](R& r, Q&, L&) { r.set_reason(std::string(257, 'x')); },
                    "reason: longer than 256 bytes", "", ""},
        RequestCase{"ReasonInvalidUtf8", [](R& r, Q&, L&) { r.set_reason("bad \xc3\x28"); },
                    "reason: must be valid UTF-8", "", ""},
        RequestCase{"ReasonOverlongUtf8", [](R& r, Q&, L&) { r.set_reason("\xc0\xaf"); },
                    "reason: must be valid UTF-8", "", ""},
        RequestCase{"ReasonOverlongThreeByteUtf8",
                    [](R& r, Q&, L&) { r.set_reason("\xe0\x80\xaf"); },
                    "reason: must be valid UTF-8", "", ""},
        RequestCase{"ReasonBeyondUnicode", [](R& r, Q&, L&) { r.set_reason("\xf4\x90\x80\x80"); },
                    "reason: must be valid UTF-8", "", ""},
        RequestCase{"ReasonSurrogate", [](R& r, Q&, L&) { r.set_reason("\xed\xa0\x80"); },
                    "reason: must be valid UTF-8", "", ""},
        RequestCase{"ReasonTruncatedUtf8", [](R& r, Q&, L&) { r.set_reason("ok \xe2\x82"); },
                    "reason: must be valid UTF-8", "", ""},
        RequestCase{"ReasonControlCharacter", [](R& r, Q&, L&) { r.set_reason("a\nb"); },
                    "reason: must be valid UTF-8 without control characters", "", ""},
        RequestCase{"ReasonBidirectionalControl",
                    [](R& r, Q&, L&) { r.set_reason("a \xe2\x80\xae b"); },
                    "reason: must be valid UTF-8 without control characters (contains a "
                    "bidirectional control (U+202E))",
                    "", ""},
        RequestCase{"ListStatusFilterIsAccepted",
                    [](R&, Q&, L& l) { l.set_status(tellonce::v1::REVOKED); }, "", "", ""},
        RequestCase{"ListStatusUnknown",
                    [](R&, Q&, L& l) { l.set_status(static_cast<tellonce::v1::ConsentStatus>(9)); },
                    "", "", "status: unknown value 9"},
        RequestCase{"PageSizeAtMaximumIsAccepted",
                    [](R&, Q&, L& l) { l.set_page_size(500); }, "", "", ""},
        RequestCase{"PageSizeNegative", [](R&, Q&, L& l) { l.set_page_size(-1); }, "", "",
                    "page_size: must not be negative"},
        RequestCase{"PageSizeOverMaximum", [](R&, Q&, L& l) { l.set_page_size(501); }, "", "",
                    "page_size: at most 500"},
        RequestCase{"PageTokenConsentIdIsAccepted",
                    [](R&, Q&, L& l) { l.set_page_token(kConsentId); }, "", "", ""},
        RequestCase{"PageTokenMalformed", [](R&, Q&, L& l) { l.set_page_token("page-2"); }, "",
                    "", "page_token: not a valid page token"},
        RequestCase{"ListCitizenIsCheckedBeforePageSize",
                    [](R&, Q&, L& l) {
                      l.clear_citizen_id();
                      l.set_page_size(-1);
                    },
                    "", "", "citizen_id: "}),
    [](const ::testing::TestParamInfo<RequestCase>& info) { return info.param.name; });

}  // namespace
}  // namespace tellonce::consent
