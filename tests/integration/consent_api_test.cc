// ConsentService against a real broker process over real mutual TLS on 127.0.0.1.

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certs/signed_messages.h"
#include "certs/signing.h"
#include "certs/tls.h"
#include "consent/registry.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "proto/textproto.h"
#include "tellonce/v1/consent.grpc.pb.h"
#include "tests/integration/harness.h"

namespace tellonce::testing {
namespace {

using google::protobuf::util::TimeUtil;
using tellonce::v1::ConsentService;

class ConsentApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    absl::StatusOr<Pki> pki = MakePki(dir_->path() + "/pki", SampleDirectoryFile(), {"stranger"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new Pki(*pki);
    absl::StatusOr<Pki> foreign = MakePki(dir_->path() + "/foreign-pki", SampleDirectoryFile());
    ASSERT_TRUE(foreign.ok()) << foreign.status();
    foreign_pki_ = new Pki(*foreign);
    broker_ = new BrokerProcess(dir_->path() + "/broker", *pki_, SampleDirectoryFor(*pki_),
                                "limits { max_receive_message_bytes: 65536 }\n");
    absl::Status started = broker_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  static void TearDownTestSuite() {
    delete broker_;
    delete foreign_pki_;
    delete pki_;
    delete dir_;
  }

  std::unique_ptr<ConsentService::Stub> Stub(const std::string& agency, const Pki* pki = nullptr) {
    return ConsentService::NewStub(AgencyChannel(pki ? *pki : *pki_, agency, broker_->address()));
  }

  static void Deadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  static tellonce::v1::GrantConsentRequest ValidGrant(const std::string& citizen,
                                                      const std::string& request_id) {
    tellonce::v1::GrantConsentRequest r;
    r.set_request_id(request_id);
    r.set_citizen_id(citizen);
    r.set_consumer("tax");
    r.add_attributes("bank.interest_paid");
    r.add_attributes("person.name");
    r.set_purpose("TAX_DEDUCTION_CHECK");
    *r.mutable_expires_at() =
        TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now() + absl::Hours(24 * 30)));
    r.set_mode(tellonce::v1::UNTIL_EXPIRY);
    return r;
  }

  // All consents of `citizen` as seen by the portal.
  std::vector<tellonce::v1::Consent> ListAll(const std::string& citizen) {
    std::vector<tellonce::v1::Consent> all;
    auto stub = Stub("portal");
    tellonce::v1::ListConsentsRequest request;
    request.set_citizen_id(citizen);
    while (true) {
      grpc::ClientContext context;
      Deadline(&context);
      tellonce::v1::ListConsentsResponse response;
      AddCitizenAssertion(&context, *pki_, request.citizen_id());
      grpc::Status status = stub->ListConsents(&context, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      all.insert(all.end(), response.consents().begin(), response.consents().end());
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return all;
  }

  static TempDir* dir_;
  static Pki* pki_;
  static Pki* foreign_pki_;
  static BrokerProcess* broker_;
};

TempDir* ConsentApiTest::dir_ = nullptr;
Pki* ConsentApiTest::pki_ = nullptr;
Pki* ConsentApiTest::foreign_pki_ = nullptr;
BrokerProcess* ConsentApiTest::broker_ = nullptr;

TEST_F(ConsentApiTest, PortalGrantsGetsListsAndRevokes) {
  const std::string citizen = CitizenId(1);
  auto portal = Stub("portal");

  grpc::ClientContext grant_ctx;
  Deadline(&grant_ctx);
  tellonce::v1::GrantConsentResponse granted;
  AddCitizenAssertion(&grant_ctx, *pki_, citizen);
  grpc::Status status = portal->GrantConsent(&grant_ctx, ValidGrant(citizen, "g-1"), &granted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(granted.consent().status(), tellonce::v1::ACTIVE);
  EXPECT_EQ(granted.consent().portal(), "portal");  // from the certificate
  EXPECT_EQ(granted.consent().citizen_id(), citizen);
  ASSERT_EQ(granted.consent().events_size(), 1);
  EXPECT_EQ(granted.consent().events(0).kind(), tellonce::v1::ConsentEvent::GRANTED);

  grpc::ClientContext get_ctx;
  Deadline(&get_ctx);
  tellonce::v1::GetConsentRequest get;
  get.set_consent_id(granted.consent().consent_id());
  get.set_citizen_id(citizen);
  tellonce::v1::GetConsentResponse got;
  AddCitizenAssertion(&get_ctx, *pki_, get.citizen_id());
  status = portal->GetConsent(&get_ctx, get, &got);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got.consent(), granted.consent()));
  EXPECT_EQ(got.receipt().SerializeAsString(), granted.receipt().SerializeAsString());

  std::vector<tellonce::v1::Consent> listed = ListAll(citizen);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].consent_id(), granted.consent().consent_id());

  grpc::ClientContext revoke_ctx;
  Deadline(&revoke_ctx);
  tellonce::v1::RevokeConsentRequest revoke;
  revoke.set_consent_id(granted.consent().consent_id());
  revoke.set_citizen_id(citizen);
  revoke.set_reason("citizen withdrew consent");
  tellonce::v1::RevokeConsentResponse revoked;
  AddCitizenAssertion(&revoke_ctx, *pki_, revoke.citizen_id());
  status = portal->RevokeConsent(&revoke_ctx, revoke, &revoked);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(revoked.consent().status(), tellonce::v1::REVOKED);
  ASSERT_EQ(revoked.consent().events_size(), 2);
  EXPECT_EQ(revoked.consent().events(1).kind(), tellonce::v1::ConsentEvent::REVOKED);
  EXPECT_EQ(revoked.consent().events(1).reason(), "citizen withdrew consent");

  listed = ListAll(citizen);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].status(), tellonce::v1::REVOKED);
}

// The receipt is signed by the broker's signing key, named by its key id, and not by
// its TLS key (issue 13); it verifies only as a receipt.
TEST_F(ConsentApiTest, ReceiptVerifiesWithTheSigningKeySetAndNotAfterTampering) {
  auto portal = Stub("portal");
  grpc::ClientContext context;
  Deadline(&context);
  tellonce::v1::GrantConsentResponse granted;
  AddCitizenAssertion(&context, *pki_, CitizenId(2));
  ASSERT_TRUE(portal->GrantConsent(&context, ValidGrant(CitizenId(2), "r-1"), &granted).ok());

  absl::StatusOr<certs::VerifyingKeySet> key =
      certs::VerifyingKeySet::FromDirectory(pki_->signing_keys());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(granted.receipt().key_id(), pki_->signing_key_id());
  absl::StatusOr<tellonce::v1::ReceiptBody> body = certs::VerifyReceipt(granted.receipt(), *key);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(body->record_id(), granted.consent().consent_id());
  EXPECT_EQ(body->principal_id(), CitizenId(2));
  EXPECT_EQ(body->controller(), "tax");
  EXPECT_EQ(body->issuer(), "spiffe://tellonce.local/broker");

  tellonce::v1::ConsentReceipt tampered = granted.receipt();
  (*tampered.mutable_body())[tampered.body().size() / 2] ^= 0x01;
  EXPECT_FALSE(certs::VerifyReceipt(tampered, *key).ok());

  // Not the TLS key's signature.
  absl::StatusOr<certs::VerifyingKey> tls_key =
      certs::VerifyingKey::FromCertificatePemFile(pki_->broker_cert());
  ASSERT_TRUE(tls_key.ok()) << tls_key.status();
  EXPECT_EQ(certs::VerifyReceipt(granted.receipt(), *tls_key).status().code(),
            absl::StatusCode::kUnauthenticated);
  // A receipt's signature is no checkpoint's.
  EXPECT_EQ(key->Verify(certs::SignedKind::kCheckpoint, granted.receipt().key_id(),
                        granted.receipt().body(), granted.receipt().signature())
                .code(),
            absl::StatusCode::kUnauthenticated);
  // An unknown key id is refused, naming it.
  tellonce::v1::ConsentReceipt renamed = granted.receipt();
  renamed.set_key_id("rotated-away");
  absl::Status unknown = certs::VerifyReceipt(renamed, *key).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(std::string(unknown.message()).find("rotated-away"), std::string::npos) << unknown;
}

TEST_F(ConsentApiTest, RetriedGrantWithSameRequestIdReturnsFirstResult) {
  const std::string citizen = CitizenId(3);
  auto portal = Stub("portal");
  const tellonce::v1::GrantConsentRequest request = ValidGrant(citizen, "retry-1");
  tellonce::v1::GrantConsentResponse first, second;
  {
    grpc::ClientContext context;
    Deadline(&context);
    AddCitizenAssertion(&context, *pki_, request.citizen_id());
    ASSERT_TRUE(portal->GrantConsent(&context, request, &first).ok());
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    AddCitizenAssertion(&context, *pki_, request.citizen_id());
    grpc::Status status = portal->GrantConsent(&context, request, &second);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(first.consent().consent_id(), second.consent().consent_id());
  EXPECT_EQ(first.receipt().SerializeAsString(), second.receipt().SerializeAsString());
  EXPECT_EQ(ListAll(citizen).size(), 1u);

  // The same request id for a different consent is an error, not a silent replay.
  tellonce::v1::GrantConsentRequest different = request;
  different.set_purpose("TAX_ASSESSMENT");
  grpc::ClientContext context;
  Deadline(&context);
  tellonce::v1::GrantConsentResponse response;
  AddCitizenAssertion(&context, *pki_, different.citizen_id());
  grpc::Status status = portal->GrantConsent(&context, different, &response);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("request_id"), std::string::npos);
  EXPECT_EQ(ListAll(citizen).size(), 1u);
}

TEST_F(ConsentApiTest, ConsumerCertificateIsRefused) {
  for (const std::string agency : {"tax", "bank", "ops", "stranger"}) {
    auto stub = Stub(agency);
    grpc::ClientContext context;
    Deadline(&context);
    tellonce::v1::GrantConsentResponse response;
    AddCitizenAssertion(&context, *pki_, CitizenId(4));
    grpc::Status status =
        stub->GrantConsent(&context, ValidGrant(CitizenId(4), "consumer-" + agency), &response);
    // An agency outside the directory does not get past the TLS handshake (issue 13).
    const grpc::StatusCode expected =
        agency == "stranger" ? grpc::UNAVAILABLE : grpc::PERMISSION_DENIED;
    EXPECT_EQ(status.error_code(), expected) << agency << ": " << status.error_message();
  }
  // A consumer may not read consents either.
  auto tax = Stub("tax");
  grpc::ClientContext context;
  Deadline(&context);
  tellonce::v1::ListConsentsRequest list;
  list.set_citizen_id(CitizenId(4));
  tellonce::v1::ListConsentsResponse listed;
  AddCitizenAssertion(&context, *pki_, list.citizen_id());
  EXPECT_EQ(tax->ListConsents(&context, list, &listed).error_code(), grpc::PERMISSION_DENIED);
  EXPECT_TRUE(ListAll(CitizenId(4)).empty());
}

TEST_F(ConsentApiTest, CertificateFromAnotherCaIsRefused) {
  // A portal certificate with the right SPIFFE id, but issued by another CA.
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      certs::MakeChannelCredentials({.ca_file = pki_->ca(),
                                     .cert_file = foreign_pki_->cert("portal"),
                                     .key_file = foreign_pki_->key("portal"),
                                     .crl_dir = ""},
                                    "spiffe://tellonce.local/broker");
  ASSERT_TRUE(creds.ok()) << creds.status();
  auto stub = ConsentService::NewStub(grpc::CreateChannel(broker_->address(), *creds));
  grpc::ClientContext context;
  Deadline(&context);
  tellonce::v1::GrantConsentResponse response;
  AddCitizenAssertion(&context, *pki_, CitizenId(5));
  grpc::Status status =
      stub->GrantConsent(&context, ValidGrant(CitizenId(5), "foreign"), &response);
  EXPECT_EQ(status.error_code(), grpc::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(ListAll(CitizenId(5)).empty());
}

TEST_F(ConsentApiTest, ClientWithoutCertificateIsRefused) {
  absl::StatusOr<std::string> ca = ReadFileToString(pki_->ca());
  ASSERT_TRUE(ca.ok());
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = *ca;
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto stub = ConsentService::NewStub(
      grpc::CreateCustomChannel(broker_->address(), grpc::SslCredentials(options), args));
  grpc::ClientContext context;
  Deadline(&context);
  tellonce::v1::GrantConsentResponse response;
  AddCitizenAssertion(&context, *pki_, CitizenId(6));
  grpc::Status status = stub->GrantConsent(&context, ValidGrant(CitizenId(6), "nocert"), &response);
  EXPECT_EQ(status.error_code(), grpc::UNAVAILABLE) << status.error_message();

  // And there is no plaintext port either.
  auto plain = ConsentService::NewStub(
      grpc::CreateChannel(broker_->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext plain_context;
  Deadline(&plain_context);
  AddCitizenAssertion(&plain_context, *pki_, CitizenId(6));
  EXPECT_EQ(plain->GrantConsent(&plain_context, ValidGrant(CitizenId(6), "plain"), &response)
                .error_code(),
            grpc::UNAVAILABLE);
  EXPECT_TRUE(ListAll(CitizenId(6)).empty());
}

struct MalformedCase {
  std::string name;
  std::function<void(tellonce::v1::GrantConsentRequest*)> mutate;
  std::string field;
};

TEST_F(ConsentApiTest, MalformedGrantsAreRefusedNamingTheFieldAndStoreNothing) {
  const std::string citizen = CitizenId(7);
  std::vector<MalformedCase> cases = {
      {"empty request id", [](auto* r) { r->clear_request_id(); }, "request_id"},
      {"bad checksum", [](auto* r) { r->set_citizen_id("37605030290"); }, "citizen_id"},
      {"unknown consumer", [](auto* r) { r->set_consumer("nobody"); }, "consumer"},
      {"not a consumer", [](auto* r) { r->set_consumer("bank"); }, "consumer"},
      {"no attributes", [](auto* r) { r->clear_attributes(); }, "attributes"},
      {"unknown attribute", [](auto* r) { r->add_attributes("person.shoe_size"); }, "attributes"},
      {"unknown purpose", [](auto* r) { r->set_purpose("MARKETING"); }, "purpose"},
      {"no expiry", [](auto* r) { r->clear_expires_at(); }, "expires_at"},
      {"expiry before start",
       [](auto* r) {
         *r->mutable_valid_from() =
             TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now() + absl::Hours(48)));
         *r->mutable_expires_at() =
             TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now() + absl::Hours(24)));
       },
       "expires_at"},
      {"lifetime too long",
       [](auto* r) {
         *r->mutable_expires_at() = TimeUtil::NanosecondsToTimestamp(
             absl::ToUnixNanos(absl::Now() + absl::Hours(24 * 400)));
       },
       "expires_at"},
      {"no mode", [](auto* r) { r->set_mode(tellonce::v1::CONSENT_MODE_UNSPECIFIED); }, "mode"},
      {"huge request id", [](auto* r) { r->set_request_id(std::string(1000, 'x')); }, "request_id"},
  };
  auto portal = Stub("portal");
  for (const MalformedCase& c : cases) {
    tellonce::v1::GrantConsentRequest request = ValidGrant(citizen, "malformed-" + c.name);
    c.mutate(&request);
    grpc::ClientContext context;
    Deadline(&context);
    tellonce::v1::GrantConsentResponse response;
    AddCitizenAssertion(&context, *pki_, request.citizen_id());
    grpc::Status status = portal->GrantConsent(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT) << c.name;
    EXPECT_EQ(status.error_message().rfind(c.field, 0), 0u)
        << c.name << ": message \"" << status.error_message() << "\" should start with " << c.field;
    EXPECT_EQ(status.error_message().find("37605030290"), std::string::npos) << "echoes citizen id";
  }
  EXPECT_TRUE(ListAll(citizen).empty());
}

TEST_F(ConsentApiTest, MalformedRevokeGetAndListAreRefused) {
  auto portal = Stub("portal");
  {
    grpc::ClientContext context;
    Deadline(&context);
    tellonce::v1::RevokeConsentRequest r;
    r.set_consent_id("not-an-id");
    r.set_citizen_id(CitizenId(8));
    tellonce::v1::RevokeConsentResponse response;
    AddCitizenAssertion(&context, *pki_, r.citizen_id());
    EXPECT_EQ(portal->RevokeConsent(&context, r, &response).error_code(), grpc::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    tellonce::v1::GetConsentRequest r;
    r.set_consent_id("01ARZ3NDEKTSV4RRFFQ69G5FAV");  // well formed, never issued
    r.set_citizen_id(CitizenId(8));
    tellonce::v1::GetConsentResponse response;
    AddCitizenAssertion(&context, *pki_, r.citizen_id());
    EXPECT_EQ(portal->GetConsent(&context, r, &response).error_code(), grpc::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    tellonce::v1::ListConsentsRequest r;
    r.set_citizen_id("12345");
    tellonce::v1::ListConsentsResponse response;
    AddCitizenAssertion(&context, *pki_, r.citizen_id());
    grpc::Status status = portal->ListConsents(&context, r, &response);
    EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message().rfind("citizen_id", 0), 0u) << status.error_message();
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    tellonce::v1::ListConsentsRequest r;
    r.set_citizen_id(CitizenId(8));
    r.set_page_size(100000);
    tellonce::v1::ListConsentsResponse response;
    AddCitizenAssertion(&context, *pki_, r.citizen_id());
    grpc::Status status = portal->ListConsents(&context, r, &response);
    EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message().rfind("page_size", 0), 0u) << status.error_message();
  }
}

TEST_F(ConsentApiTest, RevokingAnotherCitizensConsentIsNotFound) {
  auto portal = Stub("portal");
  grpc::ClientContext grant_ctx;
  Deadline(&grant_ctx);
  tellonce::v1::GrantConsentResponse granted;
  AddCitizenAssertion(&grant_ctx, *pki_, CitizenId(9));
  ASSERT_TRUE(portal->GrantConsent(&grant_ctx, ValidGrant(CitizenId(9), "other-1"), &granted).ok());

  grpc::ClientContext context;
  Deadline(&context);
  tellonce::v1::RevokeConsentRequest r;
  r.set_consent_id(granted.consent().consent_id());
  r.set_citizen_id(CitizenId(10));
  tellonce::v1::RevokeConsentResponse response;
  AddCitizenAssertion(&context, *pki_, r.citizen_id());
  EXPECT_EQ(portal->RevokeConsent(&context, r, &response).error_code(), grpc::NOT_FOUND);
  std::vector<tellonce::v1::Consent> listed = ListAll(CitizenId(9));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].status(), tellonce::v1::ACTIVE);
}

TEST_F(ConsentApiTest, OversizedMessageIsResourceExhaustedAndStoresNothing) {
  const std::string citizen = CitizenId(11);
  tellonce::v1::GrantConsentRequest request = ValidGrant(citizen, "oversized");
  for (int i = 0; i < 2000; ++i) request.add_attributes("person.address.padding.padding.padding");
  ASSERT_GT(request.ByteSizeLong(), 65536u);
  auto portal = Stub("portal");
  grpc::ClientContext context;
  Deadline(&context);
  tellonce::v1::GrantConsentResponse response;
  AddCitizenAssertion(&context, *pki_, request.citizen_id());
  grpc::Status status = portal->GrantConsent(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_TRUE(ListAll(citizen).empty());
}

TEST_F(ConsentApiTest, HealthServiceAnswersOverMutualTls) {
  auto health = grpc::health::v1::Health::NewStub(AgencyChannel(*pki_, "ops", broker_->address()));
  grpc::ClientContext context;
  Deadline(&context);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = health->Check(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(ConsentApiTest, ListPagesThroughManyConsentsOldestFirst) {
  const std::string citizen = CitizenId(12);
  auto portal = Stub("portal");
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    grpc::ClientContext context;
    Deadline(&context);
    tellonce::v1::GrantConsentResponse granted;
    AddCitizenAssertion(&context, *pki_, citizen);
    ASSERT_TRUE(
        portal->GrantConsent(&context, ValidGrant(citizen, "page-" + std::to_string(i)), &granted)
            .ok());
    ids.push_back(granted.consent().consent_id());
  }
  tellonce::v1::ListConsentsRequest request;
  request.set_citizen_id(citizen);
  request.set_page_size(3);
  std::vector<std::string> seen;
  int pages = 0;
  while (true) {
    grpc::ClientContext context;
    Deadline(&context);
    tellonce::v1::ListConsentsResponse response;
    AddCitizenAssertion(&context, *pki_, request.citizen_id());
    ASSERT_TRUE(portal->ListConsents(&context, request, &response).ok());
    ++pages;
    EXPECT_LE(response.consents_size(), 3);
    for (const auto& c : response.consents()) seen.push_back(c.consent_id());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, ids);
}

}  // namespace
}  // namespace tellonce::testing

namespace tellonce::testing {
namespace {

// Issue 13: grants were unlimited, and 20,000 active consents for one citizen made
// every exchange of that citizen scan them all. A broker with small limits.
class GrantLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Pki> pki = MakePki(dir_.path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::make_unique<Pki>(*pki);
    broker_ =
        std::make_unique<BrokerProcess>(dir_.path() + "/broker", *pki_, SampleDirectoryFor(*pki_),
                                        "rate_limits { grant { per_second: 1 burst: 3 } }\n"
                                        "limits { max_active_consents_per_consumer: 2 }\n");
    absl::Status started = broker_->Start();
    ASSERT_TRUE(started.ok()) << started << broker_->log();
  }
  grpc::Status Grant(const std::string& citizen, const std::string& request_id) {
    auto stub = ConsentService::NewStub(AgencyChannel(*pki_, "portal", broker_->address()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    AddCitizenAssertion(&context, *pki_, citizen);
    tellonce::v1::GrantConsentRequest r;
    r.set_request_id(request_id);
    r.set_citizen_id(citizen);
    r.set_consumer("tax");
    r.add_attributes("person.name");
    r.set_purpose("TAX_DEDUCTION_CHECK");
    *r.mutable_expires_at() =
        TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now() + absl::Hours(24)));
    r.set_mode(tellonce::v1::UNTIL_EXPIRY);
    tellonce::v1::GrantConsentResponse response;
    return stub->GrantConsent(&context, r, &response);
  }

  TempDir dir_;
  std::unique_ptr<Pki> pki_;
  std::unique_ptr<BrokerProcess> broker_;
};

TEST_F(GrantLimitsTest, GrantsBeyondThePortalsBucketAreRefusedAndStoreNothing) {
  int ok = 0;
  int limited = 0;
  for (int i = 0; i < 10; ++i) {
    grpc::Status status = Grant(CitizenId(100 + i), absl::StrCat("flood-", i));
    if (status.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(status.error_code(), grpc::RESOURCE_EXHAUSTED) << status.error_message();
      EXPECT_EQ(status.error_message(),
                "rate limit: grant for agency portal: at most 1 per second");
      ++limited;
    }
  }
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(limited, 7);
  // Refused grants stored nothing: the citizens of the refused ones have no consents.
  auto stub = ConsentService::NewStub(AgencyChannel(*pki_, "portal", broker_->address()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  AddCitizenAssertion(&context, *pki_, CitizenId(109));
  tellonce::v1::ListConsentsRequest request;
  request.set_citizen_id(CitizenId(109));
  tellonce::v1::ListConsentsResponse response;
  ASSERT_TRUE(stub->ListConsents(&context, request, &response).ok());
  EXPECT_EQ(response.consents_size(), 0);
}

TEST_F(GrantLimitsTest, ActiveConsentsPerCitizenAndConsumerAreCapped) {
  ASSERT_TRUE(Grant(CitizenId(200), "cap-1").ok());
  ASSERT_TRUE(Grant(CitizenId(200), "cap-2").ok());
  absl::SleepFor(absl::Seconds(1.1));  // a token for the next grant
  grpc::Status third = Grant(CitizenId(200), "cap-3");
  EXPECT_EQ(third.error_code(), grpc::RESOURCE_EXHAUSTED) << third.error_message();
  EXPECT_TRUE(absl::StrContains(third.error_message(), "active consents for consumer tax"))
      << third.error_message();
  EXPECT_FALSE(absl::StrContains(third.error_message(), CitizenId(200)));
  // Another citizen is not affected.
  absl::SleepFor(absl::Seconds(1.1));
  EXPECT_TRUE(Grant(CitizenId(201), "cap-4").ok());
}

}  // namespace
}  // namespace tellonce::testing
