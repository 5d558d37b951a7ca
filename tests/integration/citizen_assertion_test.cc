// Issue 13, finding 1: a second portal holding a good federation certificate tries to
// act for a citizen who authenticated to the first portal. Against the real broker,
// every citizen-bound call (grant, revoke, get, list, access history) with a token that
// is missing, expired, for another audience, for another citizen, badly signed or
// alg-confused is refused and changes nothing; the citizen's own fresh token works.

#include "certs/citizen_assertion.h"

#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tellonce/v1/consent.grpc.pb.h"
#include "tellonce/v1/transparency.grpc.pb.h"
#include "tests/integration/harness.h"

namespace tellonce::testing {
namespace {

using ::google::protobuf::util::TimeUtil;
using tellonce::v1::ConsentService;
using tellonce::v1::TransparencyService;

constexpr char kSecondPortalClient[] = "portal-b-client";

class CitizenAssertionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    absl::StatusOr<Pki> pki = MakePki(dir_->path() + "/pki", SampleDirectoryFile(), {"portal-b"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new Pki(*pki);
    const std::string directory = SampleDirectoryFor(*pki_);
    std::ofstream(directory, std::ios::app)
        << "agencies { id: \"portal-b\" name: \"Second portal\" roles: PORTAL\n"
        << "  portal_client_id: \"" << kSecondPortalClient << "\"\n"
        << "  citizen_identity_providers: \"" << kDevIdpIssuer << "\" }\n";
    broker_ = new BrokerProcess(dir_->path() + "/broker", *pki_, directory);
    absl::Status started = broker_->Start();
    ASSERT_TRUE(started.ok()) << started << broker_->log();
  }
  static void TearDownTestSuite() {
    delete broker_;
    delete pki_;
    delete dir_;
  }

  static tellonce::v1::GrantConsentRequest Grant(const std::string& citizen,
                                                 const std::string& request_id) {
    tellonce::v1::GrantConsentRequest r;
    r.set_request_id(request_id);
    r.set_citizen_id(citizen);
    r.set_consumer("tax");
    r.add_attributes("bank.interest_paid");
    r.set_purpose("TAX_DEDUCTION_CHECK");
    *r.mutable_expires_at() =
        TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now() + absl::Hours(24)));
    r.set_mode(tellonce::v1::UNTIL_EXPIRY);
    return r;
  }

  // Runs every citizen-bound call about `citizen` as `portal` with `token` (none when
  // empty) and returns their status codes: grant, revoke, get, list, access history.
  std::vector<grpc::StatusCode> AllCalls(const std::string& portal, const std::string& citizen,
                                         const std::string& consent_id, const std::string& token,
                                         std::string* messages) {
    auto consents = ConsentService::NewStub(AgencyChannel(*pki_, portal, broker_->address()));
    auto transparency =
        TransparencyService::NewStub(AgencyChannel(*pki_, portal, broker_->address()));
    std::vector<std::function<grpc::Status(grpc::ClientContext*)>> calls = {
        [&](grpc::ClientContext* c) {
          tellonce::v1::GrantConsentResponse r;
          return consents->GrantConsent(c, Grant(citizen, "attack-" + std::to_string(n_++)), &r);
        },
        [&](grpc::ClientContext* c) {
          tellonce::v1::RevokeConsentRequest q;
          q.set_citizen_id(citizen);
          q.set_consent_id(consent_id);
          tellonce::v1::RevokeConsentResponse r;
          return consents->RevokeConsent(c, q, &r);
        },
        [&](grpc::ClientContext* c) {
          tellonce::v1::GetConsentRequest q;
          q.set_citizen_id(citizen);
          q.set_consent_id(consent_id);
          tellonce::v1::GetConsentResponse r;
          return consents->GetConsent(c, q, &r);
        },
        [&](grpc::ClientContext* c) {
          tellonce::v1::ListConsentsRequest q;
          q.set_citizen_id(citizen);
          tellonce::v1::ListConsentsResponse r;
          return consents->ListConsents(c, q, &r);
        },
        [&](grpc::ClientContext* c) {
          tellonce::v1::ListAccessEventsRequest q;
          q.set_citizen_id(citizen);
          tellonce::v1::ListAccessEventsResponse r;
          return transparency->ListAccessEvents(c, q, &r);
        },
    };
    std::vector<grpc::StatusCode> codes;
    for (auto& call : calls) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      if (!token.empty()) context.AddMetadata(certs::kCitizenAssertionMetadataKey, token);
      grpc::Status status = call(&context);
      codes.push_back(status.error_code());
      if (messages != nullptr) absl::StrAppend(messages, status.error_message(), "\n");
    }
    return codes;
  }

  // The consents of `citizen` as the first portal sees them, with the citizen's token.
  std::vector<tellonce::v1::Consent> Consents(const std::string& citizen) {
    auto stub = ConsentService::NewStub(AgencyChannel(*pki_, "portal", broker_->address()));
    grpc::ClientContext context;
    AddCitizenAssertion(&context, *pki_, citizen);
    tellonce::v1::ListConsentsRequest q;
    q.set_citizen_id(citizen);
    tellonce::v1::ListConsentsResponse r;
    grpc::Status status = stub->ListConsents(&context, q, &r);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {r.consents().begin(), r.consents().end()};
  }

  std::string Signed(const certs::CitizenAssertionSigner& signer, const std::string& header,
                     const std::string& citizen, const std::string& audience) {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    absl::StatusOr<std::string> token =
        signer.SignCompact(header, absl::StrCat("{\"iss\":\"", kDevIdpIssuer, "\",\"aud\":\"",
                                                audience, "\",\"sub\":\"", citizen,
                                                "\",\"iat\":", now, ",\"exp\":", now + 300, "}"));
    EXPECT_TRUE(token.ok());
    return token.ok() ? *token : "";
  }

  static TempDir* dir_;
  static Pki* pki_;
  static BrokerProcess* broker_;
  int n_ = 0;
};

TempDir* CitizenAssertionTest::dir_ = nullptr;
Pki* CitizenAssertionTest::pki_ = nullptr;
BrokerProcess* CitizenAssertionTest::broker_ = nullptr;

TEST_F(CitizenAssertionTest, ASecondPortalCannotActForACitizenWithoutTheirFreshToken) {
  const std::string citizen = CitizenId(101);
  const std::string other = CitizenId(102);
  absl::StatusOr<std::string> consent_id = GrantConsent(*pki_, broker_->address(),
                                                        {.citizen = citizen,
                                                         .consumer = "tax",
                                                         .attributes = {"bank.interest_paid"},
                                                         .purpose = "TAX_DEDUCTION_CHECK"});
  ASSERT_TRUE(consent_id.ok()) << consent_id.status();
  const std::vector<tellonce::v1::Consent> before = Consents(citizen);
  ASSERT_EQ(before.size(), 1u);

  absl::StatusOr<certs::CitizenAssertionSigner> impostor =
      certs::CitizenAssertionSigner::GenerateEs256("dev-idp");
  ASSERT_TRUE(impostor.ok());
  absl::StatusOr<certs::CitizenAssertionSigner> idp =
      certs::CitizenAssertionSigner::FromPemFile(pki_->idp_key());
  ASSERT_TRUE(idp.ok()) << idp.status();
  const std::string header_rs = R"({"alg":"RS256","kid":"dev-idp"})";
  const std::string payload_b64 = certs::Base64UrlEncode(
      absl::StrCat("{\"iss\":\"", kDevIdpIssuer, "\",\"aud\":\"", kSecondPortalClient,
                   "\",\"sub\":\"", citizen, "\",\"iat\":", absl::ToUnixSeconds(absl::Now()),
                   ",\"exp\":", absl::ToUnixSeconds(absl::Now()) + 300, "}"));

  struct Attempt {
    std::string what;
    std::string token;
    grpc::StatusCode expected;
  };
  const std::vector<Attempt> attempts = {
      {"missing", "", grpc::UNAUTHENTICATED},
      {"expired", CitizenToken(*pki_, citizen, kSecondPortalClient, absl::Minutes(30)),
       grpc::UNAUTHENTICATED},
      // The citizen's genuine token, issued to the first portal, replayed by the second.
      {"another audience", CitizenToken(*pki_, citizen), grpc::PERMISSION_DENIED},
      {"another citizen", CitizenToken(*pki_, other, kSecondPortalClient), grpc::PERMISSION_DENIED},
      {"badly signed",
       Signed(*impostor, R"({"alg":"ES256","kid":"dev-idp"})", citizen, kSecondPortalClient),
       grpc::UNAUTHENTICATED},
      {"alg RS256 with the EC key", Signed(*idp, header_rs, citizen, kSecondPortalClient),
       grpc::UNAUTHENTICATED},
      {"alg HS256",
       absl::StrCat(certs::Base64UrlEncode(R"({"alg":"HS256","kid":"dev-idp"})"), ".", payload_b64,
                    ".", certs::Base64UrlEncode("mac")),
       grpc::UNAUTHENTICATED},
      {"alg none",
       absl::StrCat(certs::Base64UrlEncode(R"({"alg":"none","kid":"dev-idp"})"), ".", payload_b64,
                    "."),
       grpc::UNAUTHENTICATED},
      {"garbage", "not-a-token", grpc::UNAUTHENTICATED},
  };
  for (const Attempt& a : attempts) {
    std::string messages;
    std::vector<grpc::StatusCode> codes =
        AllCalls("portal-b", citizen, *consent_id, a.token, &messages);
    for (size_t i = 0; i < codes.size(); ++i) {
      EXPECT_EQ(codes[i], a.expected) << a.what << ", call " << i << ": " << messages;
    }
    EXPECT_EQ(messages.find(citizen), std::string::npos) << messages;
    EXPECT_NE(messages.find("citizen assertion"), std::string::npos) << messages;
  }

  // Nothing changed: the one consent, still ACTIVE, with its one event.
  const std::vector<tellonce::v1::Consent> after = Consents(citizen);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].SerializeAsString(), before[0].SerializeAsString());
  EXPECT_EQ(after[0].status(), tellonce::v1::ACTIVE);

  // The citizen's own fresh token, issued to the second portal, works there.
  std::vector<grpc::StatusCode> codes = AllCalls(
      "portal-b", citizen, *consent_id, CitizenToken(*pki_, citizen, kSecondPortalClient), nullptr);
  EXPECT_EQ(codes, std::vector<grpc::StatusCode>(5, grpc::OK));
  EXPECT_EQ(Consents(citizen).size(), 2u);  // granted one more, revoked the first
}

TEST_F(CitizenAssertionTest, TheGrantRecordsWhichProviderAuthenticatedTheCitizen) {
  const std::string citizen = CitizenId(103);
  absl::StatusOr<std::string> consent_id = GrantConsent(*pki_, broker_->address(),
                                                        {.citizen = citizen,
                                                         .consumer = "tax",
                                                         .attributes = {"bank.interest_paid"},
                                                         .purpose = "TAX_DEDUCTION_CHECK"});
  ASSERT_TRUE(consent_id.ok()) << consent_id.status();
  std::vector<tellonce::v1::Consent> consents = Consents(citizen);
  ASSERT_EQ(consents.size(), 1u);
  ASSERT_GE(consents[0].events_size(), 1);
  EXPECT_EQ(consents[0].events(0).citizen_authenticated_by(), kDevIdpIssuer);
  EXPECT_FALSE(consents[0].events(0).citizen_assertion_id().empty());
  EXPECT_EQ(consents[0].events(0).citizen_assertion_sha256().size(), 64u);
}

TEST_F(CitizenAssertionTest, RevokingTwiceIsFailedPrecondition) {
  const std::string citizen = CitizenId(104);
  absl::StatusOr<std::string> consent_id = GrantConsent(*pki_, broker_->address(),
                                                        {.citizen = citizen,
                                                         .consumer = "tax",
                                                         .attributes = {"bank.interest_paid"},
                                                         .purpose = "TAX_DEDUCTION_CHECK"});
  ASSERT_TRUE(consent_id.ok()) << consent_id.status();
  grpc::Status first = RevokeConsent(*pki_, broker_->address(), citizen, *consent_id);
  ASSERT_TRUE(first.ok()) << first.error_message();
  grpc::Status second = RevokeConsent(*pki_, broker_->address(), citizen, *consent_id);
  EXPECT_EQ(second.error_code(), grpc::FAILED_PRECONDITION) << second.error_message();
  EXPECT_EQ(second.error_message(), "consent is REVOKED");
}

}  // namespace
}  // namespace tellonce::testing
