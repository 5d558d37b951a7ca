// The consent registry over a real store, with a directory built in code, a P-256 key
// made for the test, and a fake clock.

#include "consent/registry.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "certs/citizen_assertion.h"
#include "certs/signed_messages.h"
#include "consent/consent_store.h"
#include "consent/validation.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "storage/rocksdb/rocks_storage.h"
#include "storage/rocksdb/testing.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_keys.h"

namespace tellonce::consent {
namespace {

using tellonce::v1::ConsentEvent;

using ::tellonce::testing::TempDir;

using ::tellonce::testing::NewP256KeyPem;

constexpr char kIssuer[] = "https://eid.gov.example";
constexpr char kClientId[] = "portal-a-client";

// `jwks_file`: the test identity provider's keys.
tellonce::v1::Directory TestDirectory(const std::string& jwks_file) {
  tellonce::v1::Directory d;
  d.set_trust_domain("gov.example");
  auto agency = [&](const std::string& id, std::initializer_list<tellonce::v1::Role> roles,
                    const std::string& endpoint = "") {
    tellonce::v1::Agency* a = d.add_agencies();
    a->set_id(id);
    a->set_name(id);
    for (tellonce::v1::Role r : roles) a->add_roles(r);
    a->set_connector_endpoint(endpoint);
  };
  agency("portal-a", {tellonce::v1::PORTAL});
  d.mutable_agencies(0)->set_portal_client_id(kClientId);
  d.mutable_agencies(0)->add_citizen_identity_providers(kIssuer);
  tellonce::v1::CitizenIdentityProvider* idp = d.add_citizen_identity_providers();
  idp->set_issuer(kIssuer);
  idp->set_jwks_file(jwks_file);
  idp->add_algorithms("ES256");
  agency("tax", {tellonce::v1::CONSUMER});
  agency("registry", {tellonce::v1::PROVIDER}, "registry.gov.example:443");
  auto attribute = [&](const std::string& name) {
    tellonce::v1::AttributeDef* a = d.add_attributes();
    a->set_name(name);
    a->set_type(tellonce::v1::STRING);
    a->set_provider("registry");
  };
  attribute("person.name");
  attribute("person.address");
  tellonce::v1::Purpose* p = d.add_purposes();
  p->set_code("TAX_DEDUCTION_CHECK");
  p->set_description("Checking the deductions claimed in a tax return");
  d.mutable_citizen_id_rule()->set_pattern("[0-9]{11}");
  return d;
}

const absl::Time kT0 = absl::FromUnixSeconds(1'900'000'000);

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  ts->set_seconds(absl::ToUnixSeconds(t));
  ts->set_nanos(0);
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<certs::CitizenAssertionSigner> signer =
        certs::CitizenAssertionSigner::GenerateEs256("idp-key-1");
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_ = std::make_unique<certs::CitizenAssertionSigner>(*std::move(signer));
    const std::string jwks_file = jwks_dir_.path() + "/jwks.json";
    std::ofstream(jwks_file) << signer_->JwksJson();
    absl::StatusOr<std::shared_ptr<const Directory>> directory =
        Directory::FromProto(TestDirectory(jwks_file));
    ASSERT_TRUE(directory.ok()) << directory.status();
    directory_ = std::make_unique<DirectoryHolder>(*directory);

    absl::StatusOr<certs::SigningKey> key = certs::SigningKey::FromPem(NewP256KeyPem());
    ASSERT_TRUE(key.ok()) << key.status();
    absl::StatusOr<certs::VerifyingKey> verifying =
        certs::VerifyingKey::FromPublicKeyPem(key->PublicKeyPem());
    ASSERT_TRUE(verifying.ok()) << verifying.status();
    verifying_ = std::make_unique<certs::VerifyingKey>(*std::move(verifying));

    absl::StatusOr<std::unique_ptr<storage::Storage>> opened =
        storage::OpenRocksStorage({.path = dir_.path()});
    ASSERT_TRUE(opened.ok()) << opened.status();
    storage_ = *std::move(opened);
    db_ = storage::rocks::DatabaseOf(*storage_);
    store_ = consent::NewConsentStore(storage_.get());
    registry_ = std::make_unique<ConsentRegistry>(
        directory_.get(), store_.get(), *std::move(key),
        ConsentRegistry::Options{.limits = RequestLimits(),
                                 .issuer = "spiffe://gov.example/broker",
                                 .clock = [this] { return Now(); }});
  }

  absl::Time Now() {
    absl::MutexLock lock(&clock_mu_);
    return now_;
  }

  // The citizen's ID token, issued now by the test identity provider to portal-a.
  std::string Token(const std::string& citizen) {
    certs::CitizenAssertionClaims claims;
    claims.issuer = kIssuer;
    claims.audience = kClientId;
    claims.citizen_id = citizen;
    claims.issued_at = Now();
    absl::StatusOr<std::string> token = signer_->Mint(claims);
    EXPECT_TRUE(token.ok()) << token.status();
    return token.ok() ? *token : "";
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&clock_mu_);
    now_ += d;
  }

  tellonce::v1::GrantConsentRequest Request(const std::string& request_id) {
    tellonce::v1::GrantConsentRequest r;
    r.set_request_id(request_id);
    r.set_citizen_id("39001010001");
    r.set_consumer("tax");
    r.add_attributes("person.address");  // deliberately not alphabetical
    r.add_attributes("person.name");
    r.set_purpose("TAX_DEDUCTION_CHECK");
    SetTime(Now() + absl::Hours(24), r.mutable_expires_at());
    r.set_mode(tellonce::v1::UNTIL_EXPIRY);
    return r;
  }

  absl::StatusOr<tellonce::v1::GrantConsentResponse> Grant(
      const tellonce::v1::GrantConsentRequest& request, const std::string& portal = "portal-a") {
    std::promise<absl::StatusOr<tellonce::v1::GrantConsentResponse>> result;
    registry_->Grant(portal, Token(request.citizen_id()), request,
                     [&](auto r) { result.set_value(std::move(r)); });
    return result.get_future().get();
  }

  absl::StatusOr<tellonce::v1::RevokeConsentResponse> Revoke(const std::string& consent_id) {
    tellonce::v1::RevokeConsentRequest request;
    request.set_consent_id(consent_id);
    request.set_citizen_id("39001010001");
    request.set_reason("no longer needed");
    std::promise<absl::StatusOr<tellonce::v1::RevokeConsentResponse>> result;
    registry_->Revoke("portal-a", Token(request.citizen_id()), request,
                      [&](auto r) { result.set_value(std::move(r)); });
    return result.get_future().get();
  }

  int CountKeys(storage::rocks::Family family) {
    rocksdb::ReadOptions options;
    options.total_order_seek = true;
    std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(options, db_->family(family)));
    int n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
    return n;
  }

  absl::Mutex clock_mu_;
  absl::Time now_ ABSL_GUARDED_BY(clock_mu_) = kT0;
  TempDir dir_;
  TempDir jwks_dir_;
  std::unique_ptr<certs::CitizenAssertionSigner> signer_;
  std::unique_ptr<DirectoryHolder> directory_;
  std::unique_ptr<certs::VerifyingKey> verifying_;
  std::unique_ptr<storage::Storage> storage_;
  storage::rocks::Database* db_ = nullptr;
  std::unique_ptr<ConsentStore> store_;
  std::unique_ptr<ConsentRegistry> registry_;
};

TEST_F(RegistryTest, GrantStoresTheConsentAndReturnsAReceiptThatVerifies) {
  tellonce::v1::GrantConsentRequest request = Request("grant-1");
  absl::StatusOr<tellonce::v1::GrantConsentResponse> granted = Grant(request);
  ASSERT_TRUE(granted.ok()) << granted.status();

  const tellonce::v1::Consent& c = granted->consent();
  EXPECT_TRUE(IsConsentId(c.consent_id())) << c.consent_id();
  EXPECT_EQ(c.citizen_id(), "39001010001");
  EXPECT_EQ(c.consumer(), "tax");
  ASSERT_EQ(c.attributes_size(), 2);
  EXPECT_EQ(c.attributes(0), "person.address");
  EXPECT_EQ(c.attributes(1), "person.name");
  EXPECT_EQ(c.purpose(), "TAX_DEDUCTION_CHECK");
  EXPECT_EQ(c.valid_from().seconds(), absl::ToUnixSeconds(kT0));  // defaulted to now
  EXPECT_EQ(c.expires_at().seconds(), request.expires_at().seconds());
  EXPECT_EQ(c.mode(), tellonce::v1::UNTIL_EXPIRY);
  EXPECT_EQ(c.portal(), "portal-a");
  EXPECT_EQ(c.captured_at().seconds(), absl::ToUnixSeconds(kT0));
  EXPECT_EQ(c.status(), tellonce::v1::ACTIVE);
  ASSERT_EQ(c.events_size(), 1);
  EXPECT_EQ(c.events(0).kind(), ConsentEvent::GRANTED);
  EXPECT_EQ(c.events(0).at().seconds(), absl::ToUnixSeconds(kT0));
  EXPECT_EQ(c.events(0).actor(), "portal-a");
  EXPECT_EQ(c.request_id(), "grant-1");

  EXPECT_EQ(granted->receipt().signature_algorithm(), certs::kSignatureAlgorithm);
  absl::StatusOr<tellonce::v1::ReceiptBody> body = VerifyReceipt(granted->receipt(), *verifying_);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(body->version(), "tellonce-receipt/1");
  EXPECT_EQ(body->record_id(), c.consent_id());
  EXPECT_EQ(body->issued_at().seconds(), absl::ToUnixSeconds(kT0));
  EXPECT_EQ(body->issuer(), "spiffe://gov.example/broker");
  EXPECT_EQ(body->jurisdiction(), "gov.example");
  EXPECT_EQ(body->principal_id(), "39001010001");
  EXPECT_EQ(body->controller(), "tax");
  ASSERT_EQ(body->purposes_size(), 1);
  EXPECT_EQ(body->purposes(0).code(), "TAX_DEDUCTION_CHECK");
  EXPECT_EQ(body->purposes(0).description(), "Checking the deductions claimed in a tax return");
  EXPECT_EQ(std::vector<std::string>(body->attributes().begin(), body->attributes().end()),
            (std::vector<std::string>{"person.address", "person.name"}));
  EXPECT_EQ(body->valid_from().seconds(), c.valid_from().seconds());
  EXPECT_EQ(body->expires_at().seconds(), c.expires_at().seconds());
  EXPECT_EQ(body->mode(), tellonce::v1::UNTIL_EXPIRY);
  EXPECT_EQ(body->collection_method(), "portal:portal-a");
  EXPECT_EQ(body->collected_at().seconds(), absl::ToUnixSeconds(kT0));

  // What Get returns is what Grant returned.
  tellonce::v1::GetConsentRequest get;
  get.set_consent_id(c.consent_id());
  get.set_citizen_id("39001010001");
  absl::StatusOr<tellonce::v1::GetConsentResponse> got =
      registry_->Get("portal-a", Token(get.citizen_id()), get);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->consent().SerializeAsString(), c.SerializeAsString());
  EXPECT_EQ(got->receipt().SerializeAsString(), granted->receipt().SerializeAsString());
}

TEST_F(RegistryTest, ChangingAnyByteOfTheReceiptFailsVerification) {
  absl::StatusOr<tellonce::v1::GrantConsentResponse> granted = Grant(Request("grant-1"));
  ASSERT_TRUE(granted.ok()) << granted.status();
  const tellonce::v1::ConsentReceipt& receipt = granted->receipt();
  ASSERT_TRUE(VerifyReceipt(receipt, *verifying_).ok());

  for (size_t i = 0; i < receipt.body().size(); ++i) {
    tellonce::v1::ConsentReceipt altered = receipt;
    (*altered.mutable_body())[i] ^= 0x01;
    absl::StatusOr<tellonce::v1::ReceiptBody> r = VerifyReceipt(altered, *verifying_);
    EXPECT_TRUE(absl::IsUnauthenticated(r.status())) << "body byte " << i << ": " << r.status();
  }
  for (size_t i = 0; i < receipt.signature().size(); ++i) {
    tellonce::v1::ConsentReceipt altered = receipt;
    (*altered.mutable_signature())[i] ^= 0x01;
    absl::StatusOr<tellonce::v1::ReceiptBody> r = VerifyReceipt(altered, *verifying_);
    EXPECT_TRUE(absl::IsUnauthenticated(r.status())) << "signature byte " << i;
  }
  tellonce::v1::ConsentReceipt other_algorithm = receipt;
  other_algorithm.set_signature_algorithm("ed25519");
  EXPECT_TRUE(absl::IsUnauthenticated(VerifyReceipt(other_algorithm, *verifying_).status()));

  // Another broker's key does not verify it either.
  absl::StatusOr<certs::SigningKey> other = certs::SigningKey::FromPem(NewP256KeyPem());
  ASSERT_TRUE(other.ok());
  absl::StatusOr<certs::VerifyingKey> other_public =
      certs::VerifyingKey::FromPublicKeyPem(other->PublicKeyPem());
  ASSERT_TRUE(other_public.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(VerifyReceipt(receipt, *other_public).status()));
}

TEST_F(RegistryTest, SignedGarbageIsReportedAsAnUnparsableBody) {
  absl::StatusOr<certs::SigningKey> key = certs::SigningKey::FromPem(NewP256KeyPem());
  ASSERT_TRUE(key.ok());
  absl::StatusOr<certs::VerifyingKey> public_key =
      certs::VerifyingKey::FromPublicKeyPem(key->PublicKeyPem());
  ASSERT_TRUE(public_key.ok());
  tellonce::v1::ConsentReceipt receipt;
  receipt.set_body("\xff\xff\xff not a protobuf");
  absl::StatusOr<std::string> signature =
      key->Sign(certs::SignedKind::kConsentReceipt, receipt.body());
  ASSERT_TRUE(signature.ok());
  receipt.set_signature(*signature);
  receipt.set_signature_algorithm(std::string(certs::kSignatureAlgorithm));
  EXPECT_TRUE(absl::IsInvalidArgument(VerifyReceipt(receipt, *public_key).status()));
}

TEST_F(RegistryTest, InvalidGrantStoresNothing) {
  tellonce::v1::GrantConsentRequest request = Request("bad-1");
  request.add_attributes("person.shoe_size");
  absl::StatusOr<tellonce::v1::GrantConsentResponse> r = Grant(request);
  ASSERT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_TRUE(absl::StartsWith(r.status().message(), "attributes")) << r.status();

  request = Request("bad-2");
  SetTime(kT0 - absl::Hours(1), request.mutable_expires_at());
  EXPECT_TRUE(absl::IsInvalidArgument(Grant(request).status()));

  EXPECT_EQ(CountKeys(storage::rocks::Family::kConsents), 0);
  EXPECT_EQ(CountKeys(storage::rocks::Family::kIndexes), 0);
}

TEST_F(RegistryTest, CallerWithoutThePortalRoleIsRefused) {
  absl::StatusOr<tellonce::v1::GrantConsentResponse> r = Grant(Request("x"), "tax");
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
  EXPECT_EQ(CountKeys(storage::rocks::Family::kConsents), 0);
}

TEST_F(RegistryTest, RetriedGrantReturnsTheFirstConsentAndReceipt) {
  tellonce::v1::GrantConsentRequest request = Request("retry-1");
  absl::StatusOr<tellonce::v1::GrantConsentResponse> first = Grant(request);
  ASSERT_TRUE(first.ok()) << first.status();
  Advance(absl::Seconds(30));
  absl::StatusOr<tellonce::v1::GrantConsentResponse> again = Grant(request);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->consent().SerializeAsString(), first->consent().SerializeAsString());
  EXPECT_EQ(again->receipt().SerializeAsString(), first->receipt().SerializeAsString());
  EXPECT_EQ(CountKeys(storage::rocks::Family::kConsents), 1);

  tellonce::v1::GrantConsentRequest different = request;
  different.set_mode(tellonce::v1::ONE_TIME);
  absl::StatusOr<tellonce::v1::GrantConsentResponse> clash = Grant(different);
  ASSERT_TRUE(absl::IsInvalidArgument(clash.status())) << clash.status();
  EXPECT_EQ(clash.status().message(), "request_id: already used for a different consent");
  EXPECT_EQ(CountKeys(storage::rocks::Family::kConsents), 1);
}

TEST_F(RegistryTest, ConsentExpiresOnTheInjectedClock) {
  tellonce::v1::GrantConsentRequest request = Request("short");
  SetTime(kT0 + absl::Hours(1), request.mutable_expires_at());
  absl::StatusOr<tellonce::v1::GrantConsentResponse> granted = Grant(request);
  ASSERT_TRUE(granted.ok()) << granted.status();
  const std::string id = granted->consent().consent_id();

  tellonce::v1::GetConsentRequest get;
  get.set_consent_id(id);
  get.set_citizen_id("39001010001");
  Advance(absl::Minutes(59));
  absl::StatusOr<tellonce::v1::GetConsentResponse> before =
      registry_->Get("portal-a", Token(get.citizen_id()), get);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->consent().status(), tellonce::v1::ACTIVE);

  Advance(absl::Minutes(2));
  absl::StatusOr<tellonce::v1::GetConsentResponse> after =
      registry_->Get("portal-a", Token(get.citizen_id()), get);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->consent().status(), tellonce::v1::EXPIRED);
  ASSERT_EQ(after->consent().events_size(), 2);
  EXPECT_EQ(after->consent().events(1).kind(), ConsentEvent::EXPIRED);
  EXPECT_EQ(after->consent().events(1).at().seconds(), absl::ToUnixSeconds(kT0 + absl::Hours(1)));

  tellonce::v1::ListConsentsRequest list;
  list.set_citizen_id("39001010001");
  list.set_status(tellonce::v1::EXPIRED);
  absl::StatusOr<tellonce::v1::ListConsentsResponse> expired =
      registry_->List("portal-a", Token(list.citizen_id()), list);
  ASSERT_TRUE(expired.ok()) << expired.status();
  ASSERT_EQ(expired->consents_size(), 1);
  EXPECT_EQ(expired->consents(0).consent_id(), id);

  absl::StatusOr<tellonce::v1::RevokeConsentResponse> revoked = Revoke(id);
  ASSERT_TRUE(absl::IsFailedPrecondition(revoked.status())) << revoked.status();
}

TEST_F(RegistryTest, RevokeRecordsThePortalAndReason) {
  absl::StatusOr<tellonce::v1::GrantConsentResponse> granted = Grant(Request("to-revoke"));
  ASSERT_TRUE(granted.ok()) << granted.status();
  Advance(absl::Minutes(5));
  absl::StatusOr<tellonce::v1::RevokeConsentResponse> revoked =
      Revoke(granted->consent().consent_id());
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_EQ(revoked->consent().status(), tellonce::v1::REVOKED);
  ASSERT_EQ(revoked->consent().events_size(), 2);
  EXPECT_EQ(revoked->consent().events(1).actor(), "portal-a");
  EXPECT_EQ(revoked->consent().events(1).reason(), "no longer needed");
  EXPECT_EQ(revoked->consent().events(1).at().seconds(),
            absl::ToUnixSeconds(kT0 + absl::Minutes(5)));
}

TEST_F(RegistryTest, ListPagesThroughTheCitizensConsents) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<tellonce::v1::GrantConsentResponse> granted =
        Grant(Request("list-" + std::to_string(i)));
    ASSERT_TRUE(granted.ok()) << granted.status();
    ids.push_back(granted->consent().consent_id());
    Advance(absl::Seconds(1));
  }
  tellonce::v1::ListConsentsRequest request;
  request.set_citizen_id("39001010001");
  request.set_page_size(2);
  absl::StatusOr<tellonce::v1::ListConsentsResponse> first =
      registry_->List("portal-a", Token(request.citizen_id()), request);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->consents_size(), 2);
  EXPECT_EQ(first->consents(0).consent_id(), ids[0]);
  EXPECT_EQ(first->consents(1).consent_id(), ids[1]);
  ASSERT_FALSE(first->next_page_token().empty());
  request.set_page_token(first->next_page_token());
  absl::StatusOr<tellonce::v1::ListConsentsResponse> second =
      registry_->List("portal-a", Token(request.citizen_id()), request);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->consents_size(), 1);
  EXPECT_EQ(second->consents(0).consent_id(), ids[2]);
  EXPECT_TRUE(second->next_page_token().empty());
}

TEST_F(RegistryTest, EveryCallWithoutTheCitizensIdTokenIsUnauthenticatedAndChangesNothing) {
  absl::StatusOr<tellonce::v1::GrantConsentResponse> granted = Grant(Request("grant-1"));
  ASSERT_TRUE(granted.ok()) << granted.status();
  const int consents = CountKeys(storage::rocks::Family::kConsents);

  std::promise<absl::StatusOr<tellonce::v1::GrantConsentResponse>> grant;
  registry_->Grant("portal-a", "", Request("grant-2"),
                   [&](auto r) { grant.set_value(std::move(r)); });
  absl::StatusOr<tellonce::v1::GrantConsentResponse> g = grant.get_future().get();
  EXPECT_TRUE(absl::IsUnauthenticated(g.status())) << g.status();
  EXPECT_TRUE(absl::StrContains(g.status().message(), "citizen assertion: missing"));

  tellonce::v1::RevokeConsentRequest revoke;
  revoke.set_consent_id(granted->consent().consent_id());
  revoke.set_citizen_id("39001010001");
  std::promise<absl::StatusOr<tellonce::v1::RevokeConsentResponse>> revoked;
  registry_->Revoke("portal-a", "not.a.token", revoke,
                    [&](auto r) { revoked.set_value(std::move(r)); });
  EXPECT_TRUE(absl::IsUnauthenticated(revoked.get_future().get().status()));

  tellonce::v1::GetConsentRequest get;
  get.set_consent_id(granted->consent().consent_id());
  get.set_citizen_id("39001010001");
  EXPECT_TRUE(absl::IsUnauthenticated(registry_->Get("portal-a", "", get).status()));
  tellonce::v1::ListConsentsRequest list;
  list.set_citizen_id("39001010001");
  EXPECT_TRUE(absl::IsUnauthenticated(registry_->List("portal-a", "", list).status()));

  EXPECT_EQ(CountKeys(storage::rocks::Family::kConsents), consents);
  absl::StatusOr<tellonce::v1::GetConsentResponse> after =
      registry_->Get("portal-a", Token("39001010001"), get);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->consent().status(), tellonce::v1::ACTIVE);
}

TEST_F(RegistryTest, AnotherCitizensTokenIsPermissionDenied) {
  std::promise<absl::StatusOr<tellonce::v1::GrantConsentResponse>> grant;
  registry_->Grant("portal-a", Token("39001010002"), Request("grant-1"),
                   [&](auto r) { grant.set_value(std::move(r)); });
  absl::StatusOr<tellonce::v1::GrantConsentResponse> g = grant.get_future().get();
  EXPECT_TRUE(absl::IsPermissionDenied(g.status())) << g.status();
  EXPECT_FALSE(absl::StrContains(g.status().message(), "39001010002"));
  EXPECT_EQ(CountKeys(storage::rocks::Family::kConsents), 0);
}

TEST_F(RegistryTest, AnExpiredTokenIsUnauthenticated) {
  const std::string token = Token("39001010001");
  Advance(absl::Minutes(20));  // past exp (5 min) and max age (15 min)
  tellonce::v1::ListConsentsRequest list;
  list.set_citizen_id("39001010001");
  EXPECT_TRUE(absl::IsUnauthenticated(registry_->List("portal-a", token, list).status()));
}

TEST_F(RegistryTest, GrantRecordsWhichProviderAuthenticatedTheCitizenAndTheTokensHash) {
  certs::CitizenAssertionClaims claims;
  claims.issuer = kIssuer;
  claims.audience = kClientId;
  claims.citizen_id = "39001010001";
  claims.issued_at = Now();
  claims.token_id = "jti-42";
  absl::StatusOr<std::string> token = signer_->Mint(claims);
  ASSERT_TRUE(token.ok());
  std::promise<absl::StatusOr<tellonce::v1::GrantConsentResponse>> grant;
  registry_->Grant("portal-a", *token, Request("grant-1"),
                   [&](auto r) { grant.set_value(std::move(r)); });
  absl::StatusOr<tellonce::v1::GrantConsentResponse> g = grant.get_future().get();
  ASSERT_TRUE(g.ok()) << g.status();
  const tellonce::v1::ConsentEvent& granted = g->consent().events(0);
  EXPECT_EQ(granted.citizen_authenticated_by(), kIssuer);
  EXPECT_EQ(granted.citizen_assertion_id(), "jti-42");
  EXPECT_EQ(granted.citizen_assertion_sha256().size(), 64u);
  EXPECT_EQ(granted.citizen_assertion_sha256().find_first_not_of("0123456789abcdef"),
            std::string::npos);
}

TEST_F(RegistryTest, RevokeRecordsWhichProviderAuthenticatedTheCitizenAndTheTokensHash) {
  absl::StatusOr<tellonce::v1::GrantConsentResponse> granted = Grant(Request("grant-1"));
  ASSERT_TRUE(granted.ok()) << granted.status();
  absl::StatusOr<tellonce::v1::RevokeConsentResponse> revoked =
      Revoke(granted->consent().consent_id());
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  ASSERT_EQ(revoked->consent().events_size(), 2);
  const tellonce::v1::ConsentEvent& event = revoked->consent().events(1);
  EXPECT_EQ(event.kind(), tellonce::v1::ConsentEvent::REVOKED);
  EXPECT_EQ(event.actor(), "portal-a");
  EXPECT_EQ(event.reason(), "no longer needed");
  EXPECT_EQ(event.citizen_authenticated_by(), kIssuer);
  EXPECT_EQ(event.citizen_assertion_sha256().size(), 64u);
  // Not the grant's token: each call carries its own authentication.
  EXPECT_NE(event.citizen_assertion_sha256(),
            granted->consent().events(0).citizen_assertion_sha256());
}

TEST_F(RegistryTest, RevokingTwiceIsFailedPrecondition) {
  absl::StatusOr<tellonce::v1::GrantConsentResponse> granted = Grant(Request("grant-1"));
  ASSERT_TRUE(granted.ok()) << granted.status();
  ASSERT_TRUE(Revoke(granted->consent().consent_id()).ok());
  absl::StatusOr<tellonce::v1::RevokeConsentResponse> again =
      Revoke(granted->consent().consent_id());
  EXPECT_TRUE(absl::IsFailedPrecondition(again.status())) << again.status();
}

}  // namespace
}  // namespace tellonce::consent
