// The shared vocabulary, each item in one place (issue 14): identifier rules
// (proto/identifiers.h), time conversions (proto/time.h), status conversion
// (proto/grpc_status.h), deterministic serialization (proto/serialize.h), SHA-256
// (certs/sha256.h), signing and verifying receipts and checkpoints
// (certs/signed_messages.h). Where two copies disagreed before they were merged, the edge
// cases of the merged rule are pinned here.

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "certs/sha256.h"
#include "certs/signed_messages.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "openssl/evp.h"
#include "proto/grpc_status.h"
#include "proto/identifiers.h"
#include "proto/serialize.h"
#include "proto/time.h"
#include "tellonce/v1/agency_records.pb.h"
#include "tests/testing/test_keys.h"

namespace tellonce {
namespace {

TEST(IdentifiersTest, AgencyIdIsLowerAlnumAndDashUpTo63StartingAlnum) {
  EXPECT_TRUE(IsAgencyId("tax"));
  EXPECT_TRUE(IsAgencyId("0"));
  EXPECT_TRUE(IsAgencyId("pop-reg-2"));
  EXPECT_TRUE(IsAgencyId("x-"));  // a trailing dash is allowed, as in every old copy
  EXPECT_TRUE(IsAgencyId(std::string(63, 'a')));
  EXPECT_FALSE(IsAgencyId(std::string(64, 'a')));
  EXPECT_FALSE(IsAgencyId(""));
  EXPECT_FALSE(IsAgencyId("-tax"));
  EXPECT_FALSE(IsAgencyId("Tax"));
  EXPECT_FALSE(IsAgencyId("tax_office"));
  EXPECT_FALSE(IsAgencyId("tax.office"));
  EXPECT_FALSE(IsAgencyId(std::string("ta\0x", 4)));
  EXPECT_FALSE(IsAgencyId("t\xc3\xa4x"));
}

TEST(IdentifiersTest, AttributeNameNeedsTwoDottedLowerSegments) {
  EXPECT_TRUE(IsAttributeName("person.name"));
  EXPECT_TRUE(IsAttributeName("tax.annual_income"));
  EXPECT_TRUE(IsAttributeName("a.b.c9_"));
  EXPECT_FALSE(IsAttributeName("person"));
  EXPECT_FALSE(IsAttributeName(""));
  EXPECT_FALSE(IsAttributeName("."));
  EXPECT_FALSE(IsAttributeName("person."));
  EXPECT_FALSE(IsAttributeName(".name"));
  EXPECT_FALSE(IsAttributeName("person..name"));
  EXPECT_FALSE(IsAttributeName("person.9name"));
  EXPECT_FALSE(IsAttributeName("person._name"));
  EXPECT_FALSE(IsAttributeName("Person.name"));
  EXPECT_FALSE(IsAttributeName("person.na-me"));
  EXPECT_FALSE(IsAttributeName("person\n.name"));
}

TEST(IdentifiersTest, UpperCodeIsUpperSnakeUpTo64) {
  EXPECT_TRUE(IsUpperCode("ADDRESS_CHANGED"));
  EXPECT_TRUE(IsUpperCode("A"));
  EXPECT_TRUE(IsUpperCode("TAX_2024"));
  EXPECT_TRUE(IsUpperCode(std::string(64, 'A')));
  EXPECT_FALSE(IsUpperCode(std::string(65, 'A')));
  EXPECT_FALSE(IsUpperCode(""));
  EXPECT_FALSE(IsUpperCode("_A"));
  EXPECT_FALSE(IsUpperCode("2A"));
  EXPECT_FALSE(IsUpperCode("Address"));
  EXPECT_FALSE(IsUpperCode("ADDRESS-CHANGED"));
}

// The directory allowed at most 253 bytes, SPIFFE ids at most 255: merged at SPIFFE's.
TEST(IdentifiersTest, TrustDomainIsLowerDnsNameUpTo255Bytes) {
  EXPECT_TRUE(IsTrustDomain("gov.example"));
  EXPECT_TRUE(IsTrustDomain("localhost"));
  EXPECT_TRUE(IsTrustDomain("a-b.c0"));
  EXPECT_TRUE(IsTrustDomain(std::string(63, 'a') + ".b"));
  EXPECT_FALSE(IsTrustDomain(std::string(64, 'a') + ".b"));
  std::string longest;  // four labels of 63 and three dots: 255 bytes
  for (int i = 0; i < 3; ++i) longest += std::string(63, 'a') + ".";
  longest += std::string(63, 'b');
  ASSERT_EQ(longest.size(), 255u);
  EXPECT_TRUE(IsTrustDomain(longest));
  EXPECT_FALSE(IsTrustDomain("c" + longest));
  EXPECT_FALSE(IsTrustDomain(""));
  EXPECT_FALSE(IsTrustDomain("Gov.example"));
  EXPECT_FALSE(IsTrustDomain("gov..example"));
  EXPECT_FALSE(IsTrustDomain(".gov"));
  EXPECT_FALSE(IsTrustDomain("gov."));
  EXPECT_FALSE(IsTrustDomain("-gov.example"));
  EXPECT_FALSE(IsTrustDomain("gov-.example"));
  EXPECT_FALSE(IsTrustDomain("gov_example"));
  EXPECT_FALSE(IsTrustDomain("gov.example/x"));
}

TEST(IdentifiersTest, HostPortParsesNamesIpv4AndBracketedIpv6) {
  std::optional<HostPort> parsed = ParseHostPort("registry.gov.example:443");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->host, "registry.gov.example");
  EXPECT_EQ(parsed->port, 443u);
  parsed = ParseHostPort("[::1]:7503");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->host, "::1");
  EXPECT_EQ(parsed->port, 7503u);
  parsed = ParseHostPort("127.0.0.1:0");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->port, 0u);
  EXPECT_TRUE(ParseHostPort("my_host-1.Example:65535").has_value());
  EXPECT_TRUE(ParseHostPort("[::ffff:10.0.0.1]:80").has_value());
}

// The broker's and the connectors' configuration checked only "something:number"
// (with absl::SimpleAtoi, so "+80" and " 80" passed); the directory checked the host
// too. Merged at the directory's rule.
TEST(IdentifiersTest, HostPortRefusesWhatNoDialerOrListenerTakes) {
  for (const char* bad : {"",
                          ":",
                          ":443",
                          "registry",
                          "registry:",
                          "registry:port",
                          "registry:+80",
                          "registry: 80",
                          "registry:80 ",
                          "registry:65536",
                          "registry:123456",
                          "registry:-1",
                          "dns:///registry:443",
                          "https://registry:443",
                          "registry:443/path",
                          "::1:7503",
                          "[::1]",
                          "[::1]7503",
                          "[]:80",
                          "[::g]:80",
                          "[::1]:",
                          "reg istry:80",
                          "*:7443",
                          "re\xc3\xa4gistry:80"}) {
    EXPECT_FALSE(ParseHostPort(bad).has_value()) << bad;
    EXPECT_FALSE(IsHostPort(bad)) << bad;
    EXPECT_FALSE(IsListenAddress(bad)) << bad;
  }
  EXPECT_FALSE(ParseHostPort(std::string(254, 'a') + ":80").has_value());
  EXPECT_TRUE(ParseHostPort(std::string(253, 'a') + ":80").has_value());
}

TEST(IdentifiersTest, PortZeroIsForListeningOnly) {
  EXPECT_TRUE(IsListenAddress("127.0.0.1:0"));
  EXPECT_TRUE(IsListenAddress("[::]:0"));
  EXPECT_FALSE(IsHostPort("127.0.0.1:0"));
  EXPECT_TRUE(IsHostPort("127.0.0.1:1"));
  EXPECT_TRUE(IsHostPort("localhost:65535"));
  EXPECT_TRUE(IsListenAddress("0.0.0.0:7443"));
  EXPECT_TRUE(IsListenAddress("127.0.0.1:00080"));  // five digits, 80
}

TEST(IdentifiersTest, PrintableAsciiKeepsTheSpaceVisibleAsciiDoesNot) {
  EXPECT_TRUE(IsPrintableAscii(""));
  EXPECT_TRUE(IsPrintableAscii("req 1 ~!"));
  EXPECT_TRUE(IsVisibleAscii("req-1~!"));
  EXPECT_FALSE(IsVisibleAscii("req 1"));
  for (const std::string& bad :
       {std::string("a\x1f"), std::string("a\x7f"), std::string("a\n"), std::string("a\t"),
        std::string("a\0", 2), std::string("\xc3\xa4"), std::string("\x80"), std::string("\xff")}) {
    EXPECT_FALSE(IsPrintableAscii(bad)) << bad;
    EXPECT_FALSE(IsVisibleAscii(bad)) << bad;
  }
  EXPECT_TRUE(IsPrintableAscii(" "));
  EXPECT_FALSE(IsVisibleAscii(" "));
  EXPECT_TRUE(IsPrintableAscii("\x20\x7e"));
  EXPECT_TRUE(IsVisibleAscii("\x21\x7e"));
}

// The private copies converted through int64 nanoseconds (wrong past 2262-04-11) or
// did not clamp; the one conversion is exact over Timestamp's whole range.
TEST(TimeTest, TimestampsConvertExactlyOverTheWholeRange) {
  const absl::Time times[] = {
      absl::UnixEpoch(),
      absl::FromUnixSeconds(-1) + absl::Nanoseconds(1),
      absl::FromCivil(absl::CivilSecond(2262, 4, 12, 0, 0, 0), absl::UTCTimeZone()) +
          absl::Nanoseconds(7),
      absl::FromCivil(absl::CivilSecond(9999, 12, 31, 23, 59, 59), absl::UTCTimeZone()) +
          absl::Nanoseconds(999'999'999),
      absl::FromCivil(absl::CivilSecond(1, 1, 1, 0, 0, 0), absl::UTCTimeZone()),
  };
  for (absl::Time t : times) {
    const google::protobuf::Timestamp p = ToProtoTime(t);
    EXPECT_TRUE(IsValidProtoTime(p)) << t;
    EXPECT_GE(p.nanos(), 0) << t;
    EXPECT_EQ(FromProtoTime(p), t) << t;
  }
  EXPECT_EQ(ToProtoTime(absl::FromUnixSeconds(-1) + absl::Nanoseconds(1)).seconds(), -1);
  EXPECT_EQ(ToProtoTime(absl::FromUnixSeconds(-1) + absl::Nanoseconds(1)).nanos(), 1);
  // Beyond the range, and infinite times, clamp to its ends.
  EXPECT_TRUE(IsValidProtoTime(ToProtoTime(absl::InfiniteFuture())));
  EXPECT_TRUE(IsValidProtoTime(ToProtoTime(absl::InfinitePast())));
  EXPECT_EQ(ToProtoTime(absl::InfiniteFuture()).nanos(), 999'999'999);
}

TEST(TimeTest, CheckedTimestampNamesTheFieldAndRefusesOutOfRange) {
  google::protobuf::Timestamp t;
  t.set_seconds(253402300800);  // 10000-01-01
  absl::StatusOr<absl::Time> checked = CheckedFromProtoTime(t, "expires_at");
  ASSERT_FALSE(checked.ok());
  EXPECT_EQ(checked.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(checked.status().message()),
              ::testing::StartsWith("expires_at: not a valid timestamp"));
  t.set_seconds(0);
  t.set_nanos(-1);
  EXPECT_FALSE(CheckedFromProtoTime(t, "x").ok());
  t.set_nanos(1'000'000'000);
  EXPECT_FALSE(CheckedFromProtoTime(t, "x").ok());
  t.set_nanos(999'999'999);
  ASSERT_TRUE(CheckedFromProtoTime(t, "x").ok());
  EXPECT_EQ(*CheckedFromProtoTime(t, "x"), absl::UnixEpoch() + absl::Nanoseconds(999'999'999));
}

// The directory's identity-provider max_age used to drop the nanoseconds (so 0.5 s
// became 0); durations now convert whole.
TEST(TimeTest, DurationsConvertWithTheirNanosecondsAndRefuseMixedSigns) {
  google::protobuf::Duration d;
  d.set_seconds(90);
  d.set_nanos(500'000'000);
  ASSERT_TRUE(CheckedFromProtoDuration(d, "max_age").ok());
  EXPECT_EQ(*CheckedFromProtoDuration(d, "max_age"), absl::Milliseconds(90'500));
  d.set_seconds(0);
  EXPECT_EQ(FromProtoDuration(d), absl::Milliseconds(500));
  d.set_seconds(-1);
  d.set_nanos(-500'000'000);
  EXPECT_EQ(FromProtoDuration(d), absl::Milliseconds(-1500));
  EXPECT_TRUE(IsValidProtoDuration(d));
  d.set_nanos(500'000'000);  // mixed signs
  absl::StatusOr<absl::Duration> mixed = CheckedFromProtoDuration(d, "max_age");
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(std::string(mixed.status().message()), "max_age: not a valid duration");
  d.set_seconds(1);
  d.set_nanos(1'000'000'000);
  EXPECT_FALSE(IsValidProtoDuration(d));
  d.set_seconds(315'576'000'001);  // past 10,000 years
  d.set_nanos(0);
  EXPECT_FALSE(IsValidProtoDuration(d));
}

// The broker's services and the connector SDK each had a copy; both now use this one.
TEST(GrpcStatusTest, EveryCodeMapsOneToOneWithItsMessage) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(ToGrpcStatus(absl::OkStatus()).error_message(), "");
  for (int code = 1; code <= 16; ++code) {
    const absl::Status status(static_cast<absl::StatusCode>(code), "citizen_id: required");
    const grpc::Status converted = ToGrpcStatus(status);
    EXPECT_EQ(static_cast<int>(converted.error_code()), code);
    EXPECT_EQ(converted.error_message(), "citizen_id: required");
  }
  EXPECT_EQ(ToGrpcStatus(absl::PermissionDeniedError("x")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// Known answers (FIPS 180-2 examples) through the one SHA-256, parts concatenated.
TEST(Sha256Test, KnownAnswersAndPartsAreConcatenated) {
  EXPECT_EQ(certs::HashToHex(certs::Sha256({})),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(certs::HashToHex(certs::Sha256({"abc"})),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(certs::Sha256({"a", "", "bc"}), certs::Sha256({"abc"}));
  EXPECT_EQ(
      certs::HashToHex(certs::Sha256({"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"})),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string nul("\0x", 2);
  EXPECT_NE(certs::Sha256({nul}), certs::Sha256({"x"}));
  const certs::Hash h = certs::Sha256({"abc"});
  EXPECT_EQ(certs::HashToBytes(h).size(), 32u);
  absl::StatusOr<certs::Hash> back = certs::HashFromBytes(certs::HashToBytes(h));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, h);
  EXPECT_EQ(certs::HashFromBytes("short").status().code(), absl::StatusCode::kInvalidArgument);
}

// consent/registry.cc returned INTERNAL when OpenSSL failed, certs/merkle.cc aborted,
// and the citizen-assertion and pin digests ignored the failure (and used whatever
// was in the buffer). Merged: every caller gets a digest or the process stops.
TEST(Sha256DeathTest, AFailingDigestAbortsInsteadOfReturningGarbage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(certs::internal::Sha256With(nullptr, {"abc"}), "OpenSSL SHA-256 failed");
  // A digest of another length must not be taken for SHA-256 (nor overrun the buffer).
  EXPECT_DEATH(certs::internal::Sha256With(EVP_sha512(), {"abc"}), "OpenSSL SHA-256 failed");
  EXPECT_DEATH(certs::internal::Sha256With(EVP_sha1(), {"abc"}), "OpenSSL SHA-256 failed");
  EXPECT_EQ(certs::internal::Sha256With(EVP_sha256(), {"abc"}), certs::Sha256({"abc"}));
}

// Map entries come out in key order whatever the insertion order, so signatures and
// fingerprints over the bytes do not depend on how a message was built.
TEST(SerializeTest, DeterministicBytesDoNotDependOnMapInsertionOrder) {
  tellonce::v1::CitizenRecord forward;
  tellonce::v1::CitizenRecord backward;
  constexpr int kEntries = 200;
  for (int i = 0; i < kEntries; ++i) {
    (*forward.mutable_attributes())[absl::StrCat("a.k", i)].set_string_value(absl::StrCat(i));
    const int j = kEntries - 1 - i;
    (*backward.mutable_attributes())[absl::StrCat("a.k", j)].set_string_value(absl::StrCat(j));
  }
  const std::string bytes = SerializeDeterministic(forward);
  EXPECT_EQ(bytes, SerializeDeterministic(backward));
  // Keys in order: "a.k0" < "a.k1" < "a.k10" < ...
  EXPECT_LT(bytes.find("a.k0"), bytes.find("a.k1"));
  EXPECT_LT(bytes.find("a.k1"), bytes.find("a.k10"));
  EXPECT_LT(bytes.find("a.k199"), bytes.find("a.k2"));
  tellonce::v1::CitizenRecord parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.attributes().size(), static_cast<size_t>(kEntries));

  // The overload into a buffer replaces what the buffer held.
  std::string buffer(bytes.size() + 100, 'x');
  SerializeDeterministic(backward, &buffer);
  EXPECT_EQ(buffer, bytes);
}

class SignedMessagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<certs::SigningKey> key =
        certs::SigningKey::FromPem(testing::NewP256KeyPem(), "k-1");
    ASSERT_TRUE(key.ok()) << key.status();
    key_ = *std::move(key);
    absl::StatusOr<certs::VerifyingKey> public_key =
        certs::VerifyingKey::FromPublicKeyPem(key_->PublicKeyPem());
    ASSERT_TRUE(public_key.ok());
    public_key_ = *std::move(public_key);
    ASSERT_TRUE(keys_.Add("k-1", *public_key_).ok());
  }

  std::optional<certs::SigningKey> key_;
  std::optional<certs::VerifyingKey> public_key_;
  certs::VerifyingKeySet keys_;
};

TEST_F(SignedMessagesTest, ASignedCheckpointVerifiesAndGivesItsBodyBack) {
  tellonce::v1::Checkpoint body;
  body.set_issuer("spiffe://gov.example/broker");
  body.set_tree_size(7);
  body.set_root_hash(certs::HashToBytes(certs::Sha256({"root"})));
  absl::StatusOr<tellonce::v1::SignedCheckpoint> signed_checkpoint =
      certs::SignCheckpoint(body, *key_);
  ASSERT_TRUE(signed_checkpoint.ok()) << signed_checkpoint.status();
  EXPECT_EQ(signed_checkpoint->key_id(), "k-1");
  EXPECT_EQ(signed_checkpoint->signature_algorithm(), certs::kSignatureAlgorithm);
  EXPECT_EQ(signed_checkpoint->body(), SerializeDeterministic(body));
  absl::StatusOr<tellonce::v1::Checkpoint> verified =
      certs::VerifyCheckpoint(*signed_checkpoint, keys_);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->tree_size(), 7u);
  EXPECT_EQ(verified->issuer(), body.issuer());
}

// The offline audit answered INVALID_ARGUMENT for an unknown algorithm, the registry
// UNAUTHENTICATED: merged at UNAUTHENTICATED (nothing about the message is proven).
TEST_F(SignedMessagesTest, EveryWayACheckpointCanFailHasOneAnswer) {
  tellonce::v1::Checkpoint body;
  body.set_tree_size(1);
  absl::StatusOr<tellonce::v1::SignedCheckpoint> good = certs::SignCheckpoint(body, *key_);
  ASSERT_TRUE(good.ok());

  tellonce::v1::SignedCheckpoint other_algorithm = *good;
  other_algorithm.set_signature_algorithm("ed25519");
  absl::Status s = certs::VerifyCheckpoint(other_algorithm, keys_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(s.message()),
            "signature_algorithm: unsupported, expected ecdsa-p256-sha256");

  tellonce::v1::SignedCheckpoint tampered = *good;
  tampered.set_body(tampered.body() + "x");
  EXPECT_EQ(certs::VerifyCheckpoint(tampered, keys_).status().code(),
            absl::StatusCode::kUnauthenticated);

  tellonce::v1::SignedCheckpoint unknown_key = *good;
  unknown_key.set_key_id("k-2");
  EXPECT_EQ(certs::VerifyCheckpoint(unknown_key, keys_).status().code(),
            absl::StatusCode::kUnauthenticated);

  // A receipt's signature over the same bytes is not a checkpoint's, and back.
  tellonce::v1::ReceiptBody receipt_body;
  receipt_body.set_record_id("r");
  absl::StatusOr<tellonce::v1::ConsentReceipt> receipt = certs::SignReceipt(receipt_body, *key_);
  ASSERT_TRUE(receipt.ok());
  tellonce::v1::SignedCheckpoint from_receipt;
  from_receipt.set_body(receipt->body());
  from_receipt.set_signature(receipt->signature());
  from_receipt.set_signature_algorithm(receipt->signature_algorithm());
  from_receipt.set_key_id(receipt->key_id());
  EXPECT_EQ(certs::VerifyCheckpoint(from_receipt, keys_).status().code(),
            absl::StatusCode::kUnauthenticated);
  tellonce::v1::ConsentReceipt from_checkpoint;
  from_checkpoint.set_body(good->body());
  from_checkpoint.set_signature(good->signature());
  from_checkpoint.set_signature_algorithm(good->signature_algorithm());
  from_checkpoint.set_key_id(good->key_id());
  EXPECT_EQ(certs::VerifyReceipt(from_checkpoint, keys_).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(certs::VerifyReceipt(from_checkpoint, *public_key_).status().code(),
            absl::StatusCode::kUnauthenticated);

  // Signed bytes that are not a checkpoint: the signature holds, the body does not parse.
  tellonce::v1::SignedCheckpoint garbage;
  garbage.set_body("\xff\xff\xff");
  absl::StatusOr<std::string> signature =
      key_->Sign(certs::SignedKind::kCheckpoint, garbage.body());
  ASSERT_TRUE(signature.ok());
  garbage.set_signature(*signature);
  garbage.set_signature_algorithm(std::string(certs::kSignatureAlgorithm));
  garbage.set_key_id("k-1");
  s = certs::VerifyCheckpoint(garbage, keys_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(s.message()), "body: not a checkpoint");
}

TEST_F(SignedMessagesTest, AReceiptVerifiesWithTheKeySetOrOneKey) {
  tellonce::v1::ReceiptBody body;
  body.set_record_id("01J0000000000000000000000A");
  body.set_issuer("spiffe://gov.example/broker");
  absl::StatusOr<tellonce::v1::ConsentReceipt> receipt = certs::SignReceipt(body, *key_);
  ASSERT_TRUE(receipt.ok());
  ASSERT_TRUE(certs::VerifyReceipt(*receipt, keys_).ok());
  EXPECT_EQ(certs::VerifyReceipt(*receipt, keys_)->record_id(), body.record_id());
  // One key verifies whatever the key id says; a set needs the id.
  tellonce::v1::ConsentReceipt renamed = *receipt;
  renamed.set_key_id("k-9");
  EXPECT_TRUE(certs::VerifyReceipt(renamed, *public_key_).ok());
  EXPECT_EQ(certs::VerifyReceipt(renamed, keys_).status().code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace tellonce
