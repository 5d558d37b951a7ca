// Tests of certs/: SPIFFE ids, ECDSA receipt signing, and mutual TLS over real gRPC
// on loopback with certificates made by certs/make-dev-pki for the test.

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "certs/identity.h"
#include "certs/signing.h"
#include "certs/tls.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"

namespace tellonce::certs {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "gov.example";

// ---------------------------------------------------------------------------
// Helpers

std::string ReadFileOrDie(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// Single-quotes a string for /bin/sh.
std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandResult RunCommand(const std::string& command, const fs::path& log) {
  const int rc = std::system((command + " >" + ShellQuote(log) + " 2>&1").c_str());
  CommandResult r;
  r.exit_code = (rc != -1 && WIFEXITED(rc)) ? WEXITSTATUS(rc) : -1;
  r.output = ReadFileOrDie(log);
  return r;
}

// certs/make-dev-pki in the source tree: TELLONCE_SOURCE_DIR (set by CTest), else the
// nearest `certs/make-dev-pki` above the working directory.
fs::path ScriptPath() {
  if (const char* src = std::getenv("TELLONCE_SOURCE_DIR"); src != nullptr && *src != '\0') {
    return fs::path(src) / "certs" / "make-dev-pki";
  }
  fs::path dir = fs::current_path();
  for (int i = 0; i < 6; ++i) {
    if (fs::exists(dir / "certs" / "make-dev-pki")) return dir / "certs" / "make-dev-pki";
    dir = dir.parent_path();
  }
  return "certs/make-dev-pki";
}

std::string PemOf(EVP_PKEY* key, bool private_key, bool traditional = false) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  int ok = 0;
  if (!private_key) {
    ok = PEM_write_bio_PUBKEY(bio.get(), key);
  } else if (traditional) {
    ok =
        PEM_write_bio_PrivateKey_traditional(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  } else {
    ok = PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  }
  EXPECT_EQ(ok, 1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string EncryptedPkcs8Pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  char pass[] = "secret";
  EXPECT_EQ(PEM_write_bio_PKCS8PrivateKey(bio.get(), key, EVP_aes_256_cbc(), pass, sizeof(pass) - 1,
                                          nullptr, nullptr),
            1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
PkeyPtr GenerateEc(const char* curve) { return PkeyPtr(EVP_EC_gen(curve), EVP_PKEY_free); }

// ---------------------------------------------------------------------------
// The PKIs every test shares, made once by the real script.

class Pki {
 public:
  Pki(fs::path dir) : dir_(std::move(dir)) {}
  const fs::path& dir() const { return dir_; }
  std::string ca() const { return dir_ / "ca.pem"; }
  std::string crl_dir() const { return dir_ / "crl"; }
  TlsPaths Broker() const {
    return {.ca_file = ca(),
            .cert_file = dir_ / "broker.pem",
            .key_file = dir_ / "broker.key",
            .crl_dir = ""};
  }
  TlsPaths Agency(const std::string& id) const {
    return {.ca_file = ca(),
            .cert_file = dir_ / "agencies" / (id + ".pem"),
            .key_file = dir_ / "agencies" / (id + ".key"),
            .crl_dir = ""};
  }

 private:
  fs::path dir_;
};

class CertsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = (fs::temp_directory_path() / "certs_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << "mkdtemp failed";
    root_ = new fs::path(tmpl);

    // The federation PKI, with agencies from a directory file (only the top-level
    // `agencies` ids count; the mandate id and the commented-out id must not).
    WriteFile(*root_ / "directory.textproto", R"pb(
      # Test federation.
      trust_domain: "gov.example"
      agencies { id: "tax" name: "Tax { board }" roles: CONSUMER }
      agencies {
        id: "pop-reg"  # id: "commented-out"
        roles: [ PROVIDER ]
        connector_endpoint: "localhost:1"
      }
      mandates { id: "mandate-one" consumer: "tax" }
    )pb");
    Run("main", {"--out", (*root_ / "main").string(), "--directory",
                 (*root_ / "directory.textproto").string(), "--agency", "extra"});
    // Same trust domain and agency names, different CA: must not be trusted.
    Run("other",
        {"--out", (*root_ / "other").string(), "--trust-domain", kTrustDomain, "--agency", "tax"});
    // A PKI whose CRL revokes agency "revoked".
    Run("revocation", {"--out", (*root_ / "revocation").string(), "--trust-domain", kTrustDomain,
                       "--agency", "good", "--agency", "revoked"});
    Run("revoke", {"--out", (*root_ / "revocation").string(), "--revoke-agency", "revoked"});
  }

  static void TearDownTestSuite() {
    if (root_ != nullptr) {
      std::error_code ec;
      fs::remove_all(*root_, ec);
      delete root_;
      root_ = nullptr;
    }
  }

  // Runs make-dev-pki; a failure fails the suite with the script's output.
  static void Run(const std::string& name, const std::vector<std::string>& args) {
    CommandResult r = RunScript(args, name);
    ASSERT_EQ(r.exit_code, 0) << "make-dev-pki (" << name << ") failed:\n" << r.output;
  }

  static CommandResult RunScript(const std::vector<std::string>& args,
                                 const std::string& log_name) {
    std::string command = "bash " + ShellQuote(ScriptPath().string());
    for (const std::string& a : args) command += " " + ShellQuote(a);
    return RunCommand(command, *root_ / (log_name + ".log"));
  }

  void SetUp() override {
    ASSERT_NE(root_, nullptr);
    ASSERT_TRUE(fs::exists(*root_ / "revocation" / "crl" / "ca.crl.pem"))
        << "test PKIs were not created";
  }

  static Pki Main() { return Pki(*root_ / "main"); }
  static Pki Other() { return Pki(*root_ / "other"); }
  static Pki Revocation() { return Pki(*root_ / "revocation"); }

  static fs::path* root_;
};

fs::path* CertsTest::root_ = nullptr;

// ---------------------------------------------------------------------------
// SPIFFE ids

TEST(SpiffeIdTest, AcceptsBrokerAndAgencyIds) {
  struct Case {
    std::string uri;
    std::string trust_domain;
    std::string agency_id;
    bool is_broker;
  };
  const std::string id63(63, 'a');
  const std::vector<Case> cases = {
      {"spiffe://gov.example/broker", "gov.example", "", true},
      {"spiffe://gov.example/agency/tax", "gov.example", "tax", false},
      {"spiffe://gov.example/agency/pop-reg", "gov.example", "pop-reg", false},
      {"spiffe://a/agency/0", "a", "0", false},
      {"spiffe://x-1.gov-2.example/agency/a-", "x-1.gov-2.example", "a-", false},
      {"spiffe://gov.example/agency/" + id63, "gov.example", id63, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.uri);
    absl::StatusOr<SpiffeId> id = ParseSpiffeId(c.uri);
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_EQ(id->trust_domain, c.trust_domain);
    EXPECT_EQ(id->agency_id, c.agency_id);
    EXPECT_EQ(id->is_broker, c.is_broker);
    EXPECT_EQ(id->ToString(), c.uri);
  }
}

TEST(SpiffeIdTest, RefusesEverythingElse) {
  const std::vector<std::string> refused = {
      "",
      "spiffe://",
      "spiffe:///broker",
      "spiffe://gov.example",
      "spiffe://gov.example/",
      "spiffe://gov.example/broker/",
      "spiffe://gov.example/brokers",
      "spiffe://gov.example/agency",
      "spiffe://gov.example/agency/",
      "spiffe://gov.example/agency/tax/",
      "spiffe://gov.example/agency/tax/x",
      "spiffe://gov.example/agency/Tax",
      "spiffe://gov.example/agency/-tax",
      "spiffe://gov.example/agency/t_x",
      "spiffe://gov.example/agency/tax?x=1",
      "spiffe://gov.example/agency/tax#f",
      "spiffe://gov.example/agency/" + std::string(64, 'a'),
      "spiffe://gov.example/agencies/tax",
      "spiffe://gov.example//broker",
      "spiffe://Gov.example/broker",
      "spiffe://gov..example/broker",
      "spiffe://.gov.example/broker",
      "spiffe://gov.example./broker",
      "spiffe://-gov.example/broker",
      "spiffe://gov-.example/broker",
      "spiffe://gov.example:443/broker",
      "spiffe://user@gov.example/broker",
      "spiffe://gov_example/broker",
      std::string("spiffe://gov.example/agency/ta\0x", 31),
      "SPIFFE://gov.example/broker",
      "https://gov.example/broker",
      "gov.example/broker",
      "spiffe://" + std::string(64, 'a') + ".example/broker",
  };
  for (const std::string& uri : refused) {
    SCOPED_TRACE(uri);
    absl::StatusOr<SpiffeId> id = ParseSpiffeId(uri);
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(SpiffeIdTest, BuildsIds) {
  EXPECT_EQ(AgencySpiffeId("gov.example", "tax"), "spiffe://gov.example/agency/tax");
  EXPECT_EQ(BrokerSpiffeId("gov.example"), "spiffe://gov.example/broker");
}

// An AuthContext with fixed contents, for PeerIdentity without a network.
class FakeAuthContext : public grpc::AuthContext {
 public:
  FakeAuthContext(bool authenticated, std::vector<std::string> spiffe_ids)
      : authenticated_(authenticated), spiffe_ids_(std::move(spiffe_ids)) {}

  bool IsPeerAuthenticated() const override { return authenticated_; }
  std::vector<grpc::string_ref> GetPeerIdentity() const override { return {}; }
  std::string GetPeerIdentityPropertyName() const override { return ""; }
  std::vector<grpc::string_ref> FindPropertyValues(const std::string& name) const override {
    std::vector<grpc::string_ref> out;
    if (name == "peer_spiffe_id") {
      for (const std::string& id : spiffe_ids_) out.emplace_back(id);
    }
    return out;
  }
  grpc::AuthPropertyIterator begin() const override { return EmptyIterator(); }
  grpc::AuthPropertyIterator end() const override { return EmptyIterator(); }
  void AddProperty(const std::string&, const grpc::string_ref&) override {}
  bool SetPeerIdentityPropertyName(const std::string&) override { return false; }

 private:
  struct EmptyIterator : grpc::AuthPropertyIterator {
    EmptyIterator() = default;
  };
  bool authenticated_;
  std::vector<std::string> spiffe_ids_;
};

TEST(PeerIdentityTest, ReturnsTheVerifiedSpiffeId) {
  FakeAuthContext auth(true, {"spiffe://gov.example/agency/tax"});
  absl::StatusOr<SpiffeId> id = PeerIdentity(auth, kTrustDomain);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->agency_id, "tax");
  EXPECT_FALSE(id->is_broker);
}

TEST(PeerIdentityTest, UnauthenticatedPeerIsRefusedEvenWithAnId) {
  FakeAuthContext auth(false, {"spiffe://gov.example/agency/tax"});
  EXPECT_EQ(PeerIdentity(auth, kTrustDomain).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(PeerIdentityTest, MissingAmbiguousOrMalformedIdIsUnauthenticated) {
  for (const auto& ids : std::vector<std::vector<std::string>>{
           {},
           {"spiffe://gov.example/agency/tax", "spiffe://gov.example/agency/pop-reg"},
           {"spiffe://gov.example/agency/TAX"},
           {"spiffe://gov.example/something"}}) {
    FakeAuthContext auth(true, ids);
    EXPECT_EQ(PeerIdentity(auth, kTrustDomain).status().code(), absl::StatusCode::kUnauthenticated)
        << ids.size();
  }
}

TEST(PeerIdentityTest, ForeignTrustDomainIsPermissionDenied) {
  FakeAuthContext auth(true, {"spiffe://other.example/agency/tax"});
  EXPECT_EQ(PeerIdentity(auth, kTrustDomain).status().code(), absl::StatusCode::kPermissionDenied);
}

// ---------------------------------------------------------------------------
// make-dev-pki output and CertificateSpiffeId

TEST_F(CertsTest, ScriptIssuesOneCertificatePerDirectoryAgency) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(Main().dir() / "agencies")) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("tax.pem", "tax.key", "pop-reg.pem",
                                                     "pop-reg.key", "extra.pem", "extra.key"));
}

TEST_F(CertsTest, ScriptWritesPrivateKeysWithMode0600) {
  for (const fs::path& key :
       {Main().dir() / "ca.key", Main().dir() / "broker.key", Main().dir() / "agencies" / "tax.key",
        Main().dir() / "signing" / "broker-signing.key"}) {
    struct stat st;
    ASSERT_EQ(stat(key.c_str(), &st), 0) << key;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
    EXPECT_THAT(ReadFileOrDie(key), HasSubstr("-----BEGIN PRIVATE KEY-----")) << key;
  }
}

TEST_F(CertsTest, ScriptWritesAHashedCrlDirectory) {
  int hashed = 0;
  for (const auto& entry : fs::directory_iterator(Main().crl_dir())) {
    const std::string name = entry.path().filename().string();
    if (name.size() == 11 && name.substr(8) == ".r0") {
      ++hashed;
      EXPECT_EQ(ReadFileOrDie(entry.path()), ReadFileOrDie(Main().dir() / "crl" / "ca.crl.pem"));
    }
  }
  EXPECT_EQ(hashed, 1);
}

TEST_F(CertsTest, ScriptRefusesToReplaceAnExistingCaWithoutForce) {
  const std::string ca_before = ReadFileOrDie(Main().ca());
  CommandResult r =
      RunScript({"--out", Main().dir().string(), "--trust-domain", kTrustDomain}, "no-force");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("--force"));
  EXPECT_EQ(ReadFileOrDie(Main().ca()), ca_before);
}

TEST_F(CertsTest, ScriptFailsWithoutATrustDomain) {
  CommandResult r = RunScript({"--out", (*root_ / "no-td").string(), "--agency", "tax"}, "no-td");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("trust domain"));
  EXPECT_FALSE(fs::exists(*root_ / "no-td" / "ca.key"));
}

TEST_F(CertsTest, ScriptRefusesAnInvalidAgencyId) {
  CommandResult r = RunScript(
      {"--out", (*root_ / "bad-id").string(), "--trust-domain", kTrustDomain, "--agency", "Tax"},
      "bad-id");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("'Tax'"));
}

TEST_F(CertsTest, CertificateSpiffeIdReadsGeneratedCertificates) {
  absl::StatusOr<SpiffeId> broker = CertificateSpiffeId(ReadFileOrDie(Main().dir() / "broker.pem"));
  ASSERT_TRUE(broker.ok()) << broker.status();
  EXPECT_TRUE(broker->is_broker);
  EXPECT_EQ(broker->trust_domain, kTrustDomain);

  absl::StatusOr<SpiffeId> tax =
      CertificateSpiffeId(ReadFileOrDie(Main().dir() / "agencies" / "pop-reg.pem"));
  ASSERT_TRUE(tax.ok()) << tax.status();
  EXPECT_FALSE(tax->is_broker);
  EXPECT_EQ(tax->agency_id, "pop-reg");
  EXPECT_EQ(tax->ToString(), "spiffe://gov.example/agency/pop-reg");
}

TEST_F(CertsTest, CertificateSpiffeIdRefusesCertificatesWithoutExactlyOneSpiffeUri) {
  // The CA has no URI SAN at all.
  EXPECT_EQ(CertificateSpiffeId(ReadFileOrDie(Main().ca())).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CertificateSpiffeId("not a certificate").status().code(),
            absl::StatusCode::kInvalidArgument);

  const std::vector<std::pair<std::string, std::string>> sans = {
      {"two-uris", "URI:spiffe://gov.example/broker,URI:spiffe://gov.example/agency/tax"},
      {"not-spiffe", "URI:https://gov.example/agency/tax"},
  };
  for (const auto& [name, san] : sans) {
    const fs::path key = *root_ / (name + ".key");
    const fs::path cert = *root_ / (name + ".pem");
    CommandResult r = RunCommand(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "
        "/CN=test -keyout " +
            ShellQuote(key) + " -out " + ShellQuote(cert) + " -addext " +
            ShellQuote("subjectAltName=" + san),
        *root_ / (name + ".log"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(CertificateSpiffeId(ReadFileOrDie(cert)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << name;
  }
}

// ---------------------------------------------------------------------------
// Signing

TEST_F(CertsTest, SignatureVerifiesWithTheCertificateAndThePublicKey) {
  absl::StatusOr<SigningKey> key = SigningKey::FromPemFile(Main().Broker().key_file);
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<VerifyingKey> from_cert =
      VerifyingKey::FromCertificatePemFile(Main().Broker().cert_file);
  ASSERT_TRUE(from_cert.ok()) << from_cert.status();
  absl::StatusOr<VerifyingKey> from_public = VerifyingKey::FromPublicKeyPem(key->PublicKeyPem());
  ASSERT_TRUE(from_public.ok()) << from_public.status();

  const std::string data = "receipt bytes \x00\x01\xff";
  absl::StatusOr<std::string> sig = key->Sign(certs::SignedKind::kCheckpoint, data);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(from_cert->Verify(certs::SignedKind::kCheckpoint, data, *sig).ok());
  EXPECT_TRUE(from_public->Verify(certs::SignedKind::kCheckpoint, data, *sig).ok());
  // The empty message is a message too.
  absl::StatusOr<std::string> empty_sig = key->Sign(certs::SignedKind::kCheckpoint, "");
  ASSERT_TRUE(empty_sig.ok());
  EXPECT_TRUE(from_cert->Verify(certs::SignedKind::kCheckpoint, "", *empty_sig).ok());
}

TEST_F(CertsTest, AnyChangedByteFailsVerification) {
  absl::StatusOr<SigningKey> key = SigningKey::FromPemFile(Main().Broker().key_file);
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<VerifyingKey> verifier =
      VerifyingKey::FromCertificatePemFile(Main().Broker().cert_file);
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  const std::string data = "consent receipt: subject, consumer, attributes";
  absl::StatusOr<std::string> sig = key->Sign(certs::SignedKind::kCheckpoint, data);
  ASSERT_TRUE(sig.ok());
  ASSERT_TRUE(verifier->Verify(certs::SignedKind::kCheckpoint, data, *sig).ok());

  for (size_t i = 0; i < data.size(); ++i) {
    std::string changed = data;
    changed[i] ^= 0x01;
    EXPECT_EQ(verifier->Verify(certs::SignedKind::kCheckpoint, changed, *sig).code(),
              absl::StatusCode::kUnauthenticated)
        << "data byte " << i;
  }
  for (size_t i = 0; i < sig->size(); ++i) {
    std::string changed = *sig;
    changed[i] ^= 0x01;
    absl::Status s = verifier->Verify(certs::SignedKind::kCheckpoint, data, changed);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << "signature byte " << i;
  }
  EXPECT_EQ(verifier->Verify(certs::SignedKind::kCheckpoint, data, sig->substr(0, sig->size() - 1))
                .code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(verifier->Verify(certs::SignedKind::kCheckpoint, data, *sig + "x").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(verifier->Verify(certs::SignedKind::kCheckpoint, data, "").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(verifier->Verify(certs::SignedKind::kCheckpoint, data, "").message(),
              HasSubstr("signature does not verify"));
}

TEST_F(CertsTest, SignatureOfAnotherKeyFailsVerification) {
  absl::StatusOr<SigningKey> agency = SigningKey::FromPemFile(Main().Agency("tax").key_file);
  ASSERT_TRUE(agency.ok()) << agency.status();
  absl::StatusOr<VerifyingKey> broker =
      VerifyingKey::FromCertificatePemFile(Main().Broker().cert_file);
  ASSERT_TRUE(broker.ok()) << broker.status();
  absl::StatusOr<std::string> sig = agency->Sign(certs::SignedKind::kCheckpoint, "data");
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(broker->Verify(certs::SignedKind::kCheckpoint, "data", *sig).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(SigningTest, AcceptsSec1AndPkcs8P256Keys) {
  PkeyPtr p256 = GenerateEc("P-256");
  ASSERT_NE(p256, nullptr);
  for (bool traditional : {false, true}) {
    const std::string pem = PemOf(p256.get(), /*private_key=*/true, traditional);
    EXPECT_THAT(pem, HasSubstr(traditional ? "BEGIN EC PRIVATE KEY" : "BEGIN PRIVATE KEY"));
    absl::StatusOr<SigningKey> key = SigningKey::FromPem(pem);
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(key->PublicKeyPem(), PemOf(p256.get(), /*private_key=*/false));
  }
}

TEST(SigningTest, RefusesKeysThatAreNotP256) {
  PkeyPtr p384 = GenerateEc("P-384");
  PkeyPtr rsa(EVP_RSA_gen(2048), EVP_PKEY_free);
  ASSERT_NE(p384, nullptr);
  ASSERT_NE(rsa, nullptr);
  for (EVP_PKEY* k : {p384.get(), rsa.get()}) {
    absl::StatusOr<SigningKey> signing = SigningKey::FromPem(PemOf(k, /*private_key=*/true));
    EXPECT_EQ(signing.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(signing.status().message(), HasSubstr("P-256"));
    absl::StatusOr<VerifyingKey> verifying =
        VerifyingKey::FromPublicKeyPem(PemOf(k, /*private_key=*/false));
    EXPECT_EQ(verifying.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(SigningTest, RefusesEncryptedAndMalformedKeysWithoutPrompting) {
  PkeyPtr p256 = GenerateEc("P-256");
  ASSERT_NE(p256, nullptr);
  EXPECT_EQ(SigningKey::FromPem(EncryptedPkcs8Pem(p256.get())).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SigningKey::FromPem("garbage").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyingKey::FromPublicKeyPem("garbage").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyingKey::FromCertificatePem("garbage").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SigningTest, FileErrorsNameThePath) {
  absl::StatusOr<SigningKey> key = SigningKey::FromPemFile("/nonexistent/signing.key");
  EXPECT_FALSE(key.ok());
  EXPECT_THAT(key.status().message(), HasSubstr("/nonexistent/signing.key"));
  absl::StatusOr<VerifyingKey> cert = VerifyingKey::FromCertificatePemFile("/nonexistent/c.pem");
  EXPECT_FALSE(cert.ok());
  EXPECT_THAT(cert.status().message(), HasSubstr("/nonexistent/c.pem"));
}

TEST_F(CertsTest, SigningAndVerifyingAreThreadSafe) {
  absl::StatusOr<SigningKey> key = SigningKey::FromPemFile(Main().Broker().key_file);
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<VerifyingKey> verifier =
      VerifyingKey::FromCertificatePemFile(Main().Broker().cert_file);
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string data = absl::StrCat("thread ", t, " message ", i);
        absl::StatusOr<std::string> sig = key->Sign(certs::SignedKind::kCheckpoint, data);
        if (!sig.ok() || !verifier->Verify(certs::SignedKind::kCheckpoint, data, *sig).ok() ||
            verifier->Verify(certs::SignedKind::kCheckpoint, data + "!", *sig).ok()) {
          ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_THAT(failures, ::testing::Each(0));
}

// ---------------------------------------------------------------------------
// Credentials: start-up checks

TEST_F(CertsTest, KeyThatDoesNotMatchTheCertificateIsRefusedNamingTheFile) {
  TlsPaths paths = Main().Broker();
  paths.key_file = Main().Agency("tax").key_file;
  auto server = MakeServerCredentials(paths);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("tls.key_file " + paths.key_file));
  auto channel = MakeChannelCredentials(paths, "");
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(channel.status().message(), HasSubstr(paths.key_file));
}

TEST_F(CertsTest, UnreadableOrUnparsableFilesAreRefusedNamingTheFile) {
  const fs::path junk = *root_ / "junk.pem";
  WriteFile(junk, "this is not PEM\n");
  struct Case {
    std::string field;
    TlsPaths paths;
  };
  TlsPaths good = Main().Broker();
  std::vector<Case> cases;
  for (const std::string& bad : {junk.string(), (*root_ / "missing.pem").string()}) {
    TlsPaths p = good;
    p.ca_file = bad;
    cases.push_back({"tls.ca_file " + bad, p});
    p = good;
    p.cert_file = bad;
    cases.push_back({"tls.cert_file " + bad, p});
    p = good;
    p.key_file = bad;
    cases.push_back({"tls.key_file " + bad, p});
  }
  TlsPaths crl = good;
  crl.crl_dir = (*root_ / "no-such-crl-dir").string();
  cases.push_back({"tls.crl_dir " + crl.crl_dir, crl});
  // gRPC would treat a missing CRL as "not revoked": a CRL dir without a CRL of the CA
  // is refused, and so is one with a CRL of another CA (same issuer name, other key).
  crl.crl_dir = (*root_ / "empty-crl-dir").string();
  fs::create_directories(crl.crl_dir);
  cases.push_back({"tls.crl_dir " + crl.crl_dir + ": no CRL", crl});
  crl.crl_dir = Other().crl_dir();
  cases.push_back({"tls.crl_dir " + crl.crl_dir, crl});
  crl.crl_dir = junk.string();
  cases.push_back({"tls.crl_dir " + crl.crl_dir + ": not a directory", crl});
  // A certificate where the key belongs.
  TlsPaths swapped = good;
  swapped.key_file = good.cert_file;
  cases.push_back({"tls.key_file " + good.cert_file, swapped});

  for (const Case& c : cases) {
    auto server = MakeServerCredentials(c.paths);
    EXPECT_FALSE(server.ok()) << c.field;
    EXPECT_THAT(server.status().message(), HasSubstr(c.field));
    auto channel = MakeChannelCredentials(c.paths, BrokerSpiffeId(kTrustDomain));
    EXPECT_FALSE(channel.ok()) << c.field;
    EXPECT_THAT(channel.status().message(), HasSubstr(c.field));
  }
  EXPECT_TRUE(MakeServerCredentials(good).ok());
  good.crl_dir = Main().crl_dir();
  EXPECT_TRUE(MakeServerCredentials(good).ok());
}

TEST_F(CertsTest, ExpiredCrlIsRefusedAtStartUp) {
  // A CRL properly signed by the federation CA whose next update has passed: OpenSSL
  // would refuse every handshake with it, so start-up must fail instead.
  auto read_pem = [](const std::string& path, auto reader) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(path.c_str(), "r"), BIO_free);
    return bio == nullptr ? nullptr : reader(bio.get(), nullptr, nullptr, nullptr);
  };
  std::unique_ptr<X509, decltype(&X509_free)> ca(read_pem(Main().ca(), PEM_read_bio_X509),
                                                 X509_free);
  PkeyPtr ca_key(read_pem((Main().dir() / "ca.key").string(), PEM_read_bio_PrivateKey),
                 EVP_PKEY_free);
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(ca_key, nullptr);
  std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(X509_CRL_new(), X509_CRL_free);
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> last(
      ASN1_TIME_adj(nullptr, time(nullptr), -10, 0), ASN1_TIME_free);
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> next(
      ASN1_TIME_adj(nullptr, time(nullptr), -1, 0), ASN1_TIME_free);
  ASSERT_EQ(X509_CRL_set_version(crl.get(), 1), 1);
  ASSERT_EQ(X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.get())), 1);
  ASSERT_EQ(X509_CRL_set1_lastUpdate(crl.get(), last.get()), 1);
  ASSERT_EQ(X509_CRL_set1_nextUpdate(crl.get(), next.get()), 1);
  ASSERT_GT(X509_CRL_sign(crl.get(), ca_key.get(), EVP_sha256()), 0);

  const fs::path dir = *root_ / "expired-crl";
  fs::create_directories(dir);
  char name[32];
  std::snprintf(name, sizeof(name), "%08lx.r0", X509_NAME_hash(X509_get_subject_name(ca.get())));
  {
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new_file((dir / name).c_str(), "w"),
                                                  BIO_free);
    ASSERT_NE(out, nullptr);
    ASSERT_EQ(PEM_write_bio_X509_CRL(out.get(), crl.get()), 1);
  }
  TlsPaths paths = Main().Broker();
  paths.crl_dir = dir.string();
  auto creds = MakeServerCredentials(paths);
  EXPECT_EQ(creds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(creds.status().message(), HasSubstr("CRL expired"));
  EXPECT_THAT(creds.status().message(), HasSubstr((dir / name).string()));
}

// ---------------------------------------------------------------------------
// Credentials: real mutual TLS on loopback

// Echoes one message and records the caller's PeerIdentity.
class EchoService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      identities_.push_back(PeerIdentity(*ctx->auth_context(), kTrustDomain));
    }
    return new Reactor();
  }

  std::vector<absl::StatusOr<SpiffeId>> identities() {
    std::lock_guard<std::mutex> lock(mu_);
    return identities_;
  }

 private:
  class Reactor final : public grpc::ServerGenericBidiReactor {
   public:
    Reactor() { StartRead(&buffer_); }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request"));
        return;
      }
      StartWriteAndFinish(&buffer_, grpc::WriteOptions(), grpc::Status::OK);
    }
    void OnDone() override { delete this; }

   private:
    grpc::ByteBuffer buffer_;
  };

  std::mutex mu_;
  std::vector<absl::StatusOr<SpiffeId>> identities_;
};

// A server on 127.0.0.1 with an ephemeral port; shut down by the destructor.
class LoopbackServer {
 public:
  explicit LoopbackServer(std::shared_ptr<grpc::ServerCredentials> creds) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", std::move(creds), &port_);
    builder.RegisterCallbackGenericService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~LoopbackServer() {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
      server_->Wait();
    }
  }
  bool started() const { return server_ != nullptr && port_ > 0; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  EchoService& service() { return service_; }

 private:
  EchoService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// One unary call through `creds`; OK only if the echo came back intact.
grpc::Status Call(const std::string& target, std::shared_ptr<grpc::ChannelCredentials> creds,
                  const std::string& ssl_target_name_override = "") {
  grpc::ChannelArguments args;
  // No subchannel sharing between the test's channels: each must do its own handshake.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (!ssl_target_name_override.empty()) {
    args.SetSslTargetNameOverride(ssl_target_name_override);
  }
  auto channel = grpc::CreateCustomChannel(target, std::move(creds), args);
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(std::string("ping"));
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/tellonce.test.Echo/Ping", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status status = done.get_future().get();
  if (!status.ok()) return status;
  std::vector<grpc::Slice> slices;
  std::string echoed;
  if (response.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) echoed.append(s.begin(), s.end());
  }
  if (echoed != "ping") return grpc::Status(grpc::StatusCode::DATA_LOSS, "bad echo");
  return status;
}

std::shared_ptr<grpc::ServerCredentials> ServerCreds(const TlsPaths& paths) {
  auto creds = MakeServerCredentials(paths);
  EXPECT_TRUE(creds.ok()) << creds.status();
  return creds.ok() ? *creds : nullptr;
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCreds(const TlsPaths& paths,
                                                       const std::string& expected_id) {
  auto creds = MakeChannelCredentials(paths, expected_id);
  EXPECT_TRUE(creds.ok()) << creds.status();
  return creds.ok() ? *creds : nullptr;
}

TEST_F(CertsTest, AgencyClientIsAcceptedAndIdentifiedByTheServer) {
  TlsPaths server_paths = Main().Broker();
  server_paths.crl_dir = Main().crl_dir();
  auto server_creds = ServerCreds(server_paths);
  ASSERT_NE(server_creds, nullptr);
  LoopbackServer server(server_creds);
  ASSERT_TRUE(server.started());

  TlsPaths client = Main().Agency("tax");
  client.crl_dir = Main().crl_dir();
  auto creds = ChannelCreds(client, BrokerSpiffeId(kTrustDomain));
  ASSERT_NE(creds, nullptr);
  grpc::Status status = Call(server.address(), creds);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();

  auto identities = server.service().identities();
  ASSERT_EQ(identities.size(), 1u);
  ASSERT_TRUE(identities[0].ok()) << identities[0].status();
  EXPECT_EQ(identities[0]->ToString(), "spiffe://gov.example/agency/tax");
  EXPECT_EQ(identities[0]->agency_id, "tax");
}

TEST_F(CertsTest, ClientCertificateFromAnotherCaIsRejected) {
  LoopbackServer server(ServerCreds(Main().Broker()));
  ASSERT_TRUE(server.started());
  // Trusts the right CA (so the server is accepted) but presents a certificate from
  // another CA with the same SPIFFE id.
  TlsPaths client = Other().Agency("tax");
  client.ca_file = Main().ca();
  grpc::Status status = Call(server.address(), ChannelCreds(client, BrokerSpiffeId(kTrustDomain)));
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(server.service().identities().empty());
  // Control: the same client with the federation's own certificate gets through.
  EXPECT_TRUE(
      Call(server.address(), ChannelCreds(Main().Agency("tax"), BrokerSpiffeId(kTrustDomain)))
          .ok());
}

TEST_F(CertsTest, ServerCertificateFromAnotherCaIsRejectedDespiteTheRightSpiffeId) {
  // The SPIFFE id check replaces only the host name check, not chain verification.
  TlsPaths impostor = Other().Broker();
  impostor.ca_file = Main().ca();  // so that it would accept our client
  LoopbackServer server(ServerCreds(impostor));
  ASSERT_TRUE(server.started());
  EXPECT_FALSE(
      Call(server.address(), ChannelCreds(Main().Agency("tax"), BrokerSpiffeId(kTrustDomain)))
          .ok());
  EXPECT_TRUE(server.service().identities().empty());
  // Control: a client trusting the other CA accepts it.
  TlsPaths trusting = Main().Agency("tax");
  trusting.ca_file = Other().ca();
  EXPECT_TRUE(Call(server.address(), ChannelCreds(trusting, BrokerSpiffeId(kTrustDomain))).ok());
}

TEST_F(CertsTest, ClientWithoutACertificateIsRejected) {
  LoopbackServer server(ServerCreds(Main().Broker()));
  ASSERT_TRUE(server.started());
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = ReadFileOrDie(Main().ca());
  grpc::Status status = Call(server.address(), grpc::SslCredentials(no_cert), "localhost");
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(server.service().identities().empty());
  // Control: the same plain SSL client with a federation certificate is accepted.
  grpc::SslCredentialsOptions with_cert = no_cert;
  with_cert.pem_private_key = ReadFileOrDie(Main().Agency("extra").key_file);
  with_cert.pem_cert_chain = ReadFileOrDie(Main().Agency("extra").cert_file);
  grpc::Status control = Call(server.address(), grpc::SslCredentials(with_cert), "localhost");
  EXPECT_TRUE(control.ok()) << control.error_message();
}

TEST_F(CertsTest, ServerWithTheWrongSpiffeIdIsRejected) {
  // An agency certificate where the broker is expected.
  LoopbackServer server(ServerCreds(Main().Agency("pop-reg")));
  ASSERT_TRUE(server.started());
  grpc::Status status =
      Call(server.address(), ChannelCreds(Main().Agency("tax"), BrokerSpiffeId(kTrustDomain)));
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(server.service().identities().empty());
  // Control: expecting the id the server really has works, whatever the host name.
  EXPECT_TRUE(Call(server.address(),
                   ChannelCreds(Main().Agency("tax"), AgencySpiffeId(kTrustDomain, "pop-reg")),
                   "no-such-host.example")
                  .ok());
}

TEST_F(CertsTest, WithoutExpectedSpiffeIdTheHostNameIsChecked) {
  LoopbackServer server(ServerCreds(Main().Broker()));
  ASSERT_TRUE(server.started());
  auto creds = ChannelCreds(Main().Agency("tax"), "");
  grpc::Status good = Call(server.address(), creds, "localhost");
  EXPECT_TRUE(good.ok()) << good.error_message();
  EXPECT_FALSE(Call(server.address(), creds, "wrong.example").ok());
}

TEST_F(CertsTest, RevokedClientCertificateIsRejectedWhenCrlDirIsSet) {
  TlsPaths with_crl = Revocation().Broker();
  with_crl.crl_dir = Revocation().crl_dir();
  LoopbackServer checking(ServerCreds(with_crl));
  LoopbackServer not_checking(ServerCreds(Revocation().Broker()));
  ASSERT_TRUE(checking.started());
  ASSERT_TRUE(not_checking.started());
  const std::string broker = BrokerSpiffeId(kTrustDomain);

  EXPECT_FALSE(Call(checking.address(), ChannelCreds(Revocation().Agency("revoked"), broker)).ok());
  EXPECT_TRUE(checking.service().identities().empty());
  // Controls: an unrevoked certificate passes the CRL check, and the revoked one is
  // only refused because of the CRL.
  EXPECT_TRUE(Call(checking.address(), ChannelCreds(Revocation().Agency("good"), broker)).ok());
  EXPECT_TRUE(
      Call(not_checking.address(), ChannelCreds(Revocation().Agency("revoked"), broker)).ok());
}

TEST_F(CertsTest, RevokedServerCertificateIsRejectedByAClientWithCrlDir) {
  // The revoked agency's certificate serving; the client checks the CRL.
  LoopbackServer server(ServerCreds(Revocation().Agency("revoked")));
  ASSERT_TRUE(server.started());
  const std::string expected = AgencySpiffeId(kTrustDomain, "revoked");
  TlsPaths client = Revocation().Agency("good");
  client.crl_dir = Revocation().crl_dir();
  EXPECT_FALSE(Call(server.address(), ChannelCreds(client, expected)).ok());
  EXPECT_TRUE(Call(server.address(), ChannelCreds(Revocation().Agency("good"), expected)).ok());
}

// Issue 13: no domain separation between the kinds of signed message. Each payload
// now starts with a context string naming its kind.
TEST_F(CertsTest, ASignatureOfOneKindNeverVerifiesAsAnother) {
  absl::StatusOr<SigningKey> key = SigningKey::FromPemFile(Main().Broker().key_file, "k-1");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->key_id(), "k-1");
  absl::StatusOr<VerifyingKey> verifier = VerifyingKey::FromPublicKeyPem(key->PublicKeyPem());
  ASSERT_TRUE(verifier.ok());
  const std::string data = "the same bytes";
  absl::StatusOr<std::string> receipt = key->Sign(SignedKind::kConsentReceipt, data);
  absl::StatusOr<std::string> checkpoint = key->Sign(SignedKind::kCheckpoint, data);
  ASSERT_TRUE(receipt.ok() && checkpoint.ok());
  EXPECT_TRUE(verifier->Verify(SignedKind::kConsentReceipt, data, *receipt).ok());
  EXPECT_TRUE(verifier->Verify(SignedKind::kCheckpoint, data, *checkpoint).ok());
  EXPECT_EQ(verifier->Verify(SignedKind::kCheckpoint, data, *receipt).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(verifier->Verify(SignedKind::kConsentReceipt, data, *checkpoint).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(SignatureContext(SignedKind::kConsentReceipt),
            std::string_view("tellonce-receipt-v1\0", 20));
  EXPECT_EQ(SignatureContext(SignedKind::kCheckpoint),
            std::string_view("tellonce-checkpoint-v1\0", 23));
}

TEST_F(CertsTest, ScriptWritesASeparateSigningKeyItsKeyIdAndTheBrokerPin) {
  const std::string key_id = ReadFileOrDie(Main().dir() / "signing" / "key_id");
  ASSERT_EQ(key_id, "dev-1\n");
  absl::StatusOr<VerifyingKeySet> set =
      VerifyingKeySet::FromDirectory((Main().dir() / "signing-keys").string());
  ASSERT_TRUE(set.ok()) << set.status();
  absl::StatusOr<SigningKey> key =
      SigningKey::FromPemFile((Main().dir() / "signing" / "broker-signing.key").string(), "dev-1");
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<std::string> sig = key->Sign(SignedKind::kCheckpoint, "x");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(set->Verify(SignedKind::kCheckpoint, key->key_id(), "x", *sig).ok());
  EXPECT_NE(key->PublicKeyPem(), SigningKey::FromPemFile(Main().Broker().key_file)->PublicKeyPem())
      << "the signing key must not be the TLS key";

  absl::StatusOr<std::string> pin = CertificatePin(ReadFileOrDie(Main().Broker().cert_file));
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(ReadFileOrDie(Main().dir() / "broker.pin"), *pin + "\n");
  EXPECT_TRUE(CheckPinSyntax(*pin).ok());
  EXPECT_FALSE(CheckPinSyntax("abc").ok());
  EXPECT_TRUE(CheckPinned(ReadFileOrDie(Main().Broker().cert_file), {*pin}).ok());
  EXPECT_TRUE(CheckPinned(ReadFileOrDie(Main().Broker().cert_file), {}).ok());
  EXPECT_EQ(CheckPinned(ReadFileOrDie(Main().Agency("tax").cert_file), {*pin}).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(CertsTest, SigningKeySetsLoadFromADirectoryByKeyId) {
  const std::string dir = ::testing::TempDir() + "/keyset-" + std::to_string(getpid());
  fs::create_directories(dir);
  absl::StatusOr<SigningKey> a = SigningKey::FromPemFile(Main().Broker().key_file, "a");
  absl::StatusOr<SigningKey> b = SigningKey::FromPemFile(Main().Agency("tax").key_file, "b");
  ASSERT_TRUE(a.ok() && b.ok());
  std::ofstream(dir + "/a.pem") << a->PublicKeyPem();
  std::ofstream(dir + "/b.pem") << b->PublicKeyPem();
  std::ofstream(dir + "/README") << "ignored";
  absl::StatusOr<VerifyingKeySet> set = VerifyingKeySet::FromDirectory(dir);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 2u);
  absl::StatusOr<std::string> by_b = b->Sign(SignedKind::kCheckpoint, "x");
  ASSERT_TRUE(by_b.ok());
  EXPECT_TRUE(set->Verify(SignedKind::kCheckpoint, "b", "x", *by_b).ok());
  EXPECT_EQ(set->Verify(SignedKind::kCheckpoint, "a", "x", *by_b).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(set->Verify(SignedKind::kCheckpoint, "c", "x", *by_b).code(),
            absl::StatusCode::kUnauthenticated);
  std::ofstream(dir + "/bad id.pem") << a->PublicKeyPem();
  EXPECT_EQ(VerifyingKeySet::FromDirectory(dir).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SigningKey::FromPemFile(Main().Broker().key_file, "no/slash").status().code(),
            absl::StatusCode::kInvalidArgument);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tellonce::certs
