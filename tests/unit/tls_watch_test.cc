// TlsMaterialWatcher over real files and real mutual TLS on 127.0.0.1: certificates,
// keys and CRLs replaced on disk while a server runs, without a restart.

#include "certs/tls_watch.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certs/identity.h"
#include "certs/tls.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "tests/testing/peer_certificate.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_ca.h"

namespace tellonce::certs {
namespace {

namespace fs = std::filesystem;
using ::tellonce::testing::Eventually;
using ::tellonce::testing::SerialOfPem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTrustDomain[] = "gov.example";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp, std::ios::binary | std::ios::trunc) << contents;
  fs::rename(tmp, path);
}

// Answers every call OK with an empty message.
class OkService final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Reactor final : public grpc::ServerGenericBidiReactor {
     public:
      Reactor() { StartRead(&buffer_); }
      void OnReadDone(bool ok) override {
        if (!ok) return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request"));
        StartWriteAndFinish(&buffer_, grpc::WriteOptions(), grpc::Status::OK);
      }
      void OnDone() override { delete this; }

     private:
      grpc::ByteBuffer buffer_;
    };
    return new Reactor();
  }
};

class Server {
 public:
  explicit Server(std::shared_ptr<grpc::ServerCredentials> creds) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", std::move(creds), &port_);
    builder.RegisterCallbackGenericService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~Server() {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  OkService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A channel with its own connection (no subchannel sharing between test channels).
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address,
                                          std::shared_ptr<grpc::ChannelCredentials> creds) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, std::move(creds), args);
}

// One call; on success, the serial of the certificate the server presented.
absl::StatusOr<std::string> CallForSerial(const std::shared_ptr<grpc::Channel>& channel) {
  return ::tellonce::testing::CallForPeerSerial(channel, "/tellonce.test.Ok/Call", "ping");
}

fs::path ScriptPath() {
  if (const char* src = std::getenv("TELLONCE_SOURCE_DIR"); src != nullptr && *src != '\0') {
    return fs::path(src) / "certs" / "make-dev-pki";
  }
  return "certs/make-dev-pki";
}

// A dev PKI (agencies tax and bank) whose broker files the test replaces at will.
class TlsWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string command =
        absl::StrCat("bash '", ScriptPath().string(), "' --out '", pki(), "' --trust-domain ",
                     kTrustDomain, " --agency tax --agency bank >'", dir_.path(), "/pki.log' 2>&1");
    ASSERT_EQ(std::system(command.c_str()), 0) << ReadAll(dir_.path() + "/pki.log");
  }

  std::string pki() const { return dir_.path() + "/pki"; }
  std::string crl_file() const { return pki() + "/crl/ca.crl.pem"; }
  TlsPaths BrokerPaths(bool with_crl) const {
    return {.ca_file = pki() + "/ca.pem",
            .cert_file = pki() + "/broker.pem",
            .key_file = pki() + "/broker.key",
            .crl_dir = with_crl ? pki() + "/crl" : ""};
  }
  std::shared_ptr<grpc::ChannelCredentials> AgencyCreds(const std::string& agency) const {
    auto creds = MakeChannelCredentials({.ca_file = pki() + "/ca.pem",
                                         .cert_file = pki() + "/agencies/" + agency + ".pem",
                                         .key_file = pki() + "/agencies/" + agency + ".key",
                                         .crl_dir = ""},
                                        BrokerSpiffeId(kTrustDomain));
    EXPECT_TRUE(creds.ok()) << creds.status();
    return *creds;
  }
  std::unique_ptr<TlsMaterialWatcher> StartWatcher(bool with_crl,
                                                   absl::Duration poll = absl::ZeroDuration()) {
    auto w = TlsMaterialWatcher::Start(BrokerPaths(with_crl),
                                       {.poll_interval = poll, .staging_parent = dir_.path()});
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *std::move(w) : nullptr;
  }

  tellonce::testing::TempDir dir_;
};

TEST_F(TlsWatchTest, NewCertificateServesNewConnectionsWhileAnOldConnectionKeepsWorking) {
  auto watcher = StartWatcher(/*with_crl=*/true);
  ASSERT_NE(watcher, nullptr);
  Server server(*watcher->ServerCredentials());
  const std::string old_serial = SerialOfPem(ReadAll(pki() + "/broker.pem"));
  auto old_channel = NewChannel(server.address(), AgencyCreds("tax"));
  ASSERT_EQ(CallForSerial(old_channel).value_or("failed"), old_serial);
  EXPECT_EQ(watcher->status().cert_serial, old_serial);

  const std::string new_serial = tellonce::testing::IssueLeaf(
      pki(), BrokerSpiffeId(kTrustDomain), pki() + "/broker.pem", pki() + "/broker.key");
  ASSERT_FALSE(new_serial.empty());
  ASSERT_NE(new_serial, old_serial);
  ASSERT_TRUE(watcher->Reload().ok());
  EXPECT_EQ(watcher->status().cert_serial, new_serial);
  EXPECT_EQ(watcher->status().reloads, 1u);

  // gRPC picks the staged files up within its 1 s refresh.
  EXPECT_TRUE(Eventually([&] {
    return CallForSerial(NewChannel(server.address(), AgencyCreds("tax"))).value_or("") ==
           new_serial;
  }));
  // The connection made before the reload is still there, with the old certificate.
  EXPECT_EQ(CallForSerial(old_channel).value_or("failed"), old_serial);
}

TEST_F(TlsWatchTest, ChangedFilesArePickedUpByThePollWithoutReload) {
  auto watcher = StartWatcher(/*with_crl=*/false, absl::Seconds(1));
  ASSERT_NE(watcher, nullptr);
  Server server(*watcher->ServerCredentials());
  const std::string new_serial = tellonce::testing::IssueLeaf(
      pki(), BrokerSpiffeId(kTrustDomain), pki() + "/broker.pem", pki() + "/broker.key");
  ASSERT_FALSE(new_serial.empty());
  EXPECT_TRUE(Eventually([&] {
    return CallForSerial(NewChannel(server.address(), AgencyCreds("tax"))).value_or("") ==
           new_serial;
  }));
  EXPECT_EQ(watcher->status().reloads, 1u);
}

TEST_F(TlsWatchTest, GarbageCertificateIsRefusedNamingTheFileAndTheOldOneKeepsServing) {
  auto watcher = StartWatcher(/*with_crl=*/false);
  ASSERT_NE(watcher, nullptr);
  Server server(*watcher->ServerCredentials());
  const std::string old_serial = SerialOfPem(ReadAll(pki() + "/broker.pem"));
  const absl::Time loaded = watcher->status().last_load;

  WriteAll(pki() + "/broker.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
  ::testing::internal::CaptureStderr();
  absl::Status refused = watcher->Reload();
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr(pki() + "/broker.pem"));
  EXPECT_THAT(log, HasSubstr("TLS reload refused"));
  EXPECT_THAT(log, HasSubstr(pki() + "/broker.pem"));

  const TlsStatus status = watcher->status();
  EXPECT_EQ(status.refused_reloads, 1u);
  EXPECT_EQ(status.reloads, 0u);
  EXPECT_EQ(status.cert_serial, old_serial);
  EXPECT_EQ(status.last_load, loaded);
  EXPECT_TRUE(status.usable.ok());
  // Past gRPC's refresh, new connections still get the old certificate.
  absl::SleepFor(absl::Milliseconds(1500));
  EXPECT_EQ(CallForSerial(NewChannel(server.address(), AgencyCreds("tax"))).value_or("failed"),
            old_serial);
}

TEST_F(TlsWatchTest, KeyThatDoesNotMatchTheCertificateIsRefusedAndTheOldPairKeepsServing) {
  auto watcher = StartWatcher(/*with_crl=*/false, absl::Seconds(1));
  ASSERT_NE(watcher, nullptr);
  Server server(*watcher->ServerCredentials());
  const std::string old_serial = SerialOfPem(ReadAll(pki() + "/broker.pem"));
  // A new pair issued elsewhere; only its key is copied over the broker's.
  ASSERT_FALSE(tellonce::testing::IssueLeaf(pki(), BrokerSpiffeId(kTrustDomain),
                                            dir_.path() + "/other.pem", dir_.path() + "/other.key")
                   .empty());
  ::testing::internal::CaptureStderr();
  WriteAll(pki() + "/broker.key", ReadAll(dir_.path() + "/other.key"));
  // The poll finds it and refuses it (once, however many polls see it).
  const bool refused = Eventually([&] { return watcher->status().refused_reloads > 0; });
  absl::SleepFor(absl::Milliseconds(2500));
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(refused);
  EXPECT_EQ(watcher->status().refused_reloads, 1u);
  EXPECT_THAT(log, HasSubstr(absl::StrCat("tls.key_file ", pki(), "/broker.key: does not match")));
  EXPECT_EQ(CallForSerial(NewChannel(server.address(), AgencyCreds("tax"))).value_or("failed"),
            old_serial);
  // An explicit Reload reports the refusal again.
  EXPECT_THAT(watcher->Reload().message(), HasSubstr("does not match"));
}

TEST_F(TlsWatchTest, CrlThatRevokesAnAgencyRefusesItsNewConnectionsWithoutRestart) {
  auto watcher = StartWatcher(/*with_crl=*/true);
  ASSERT_NE(watcher, nullptr);
  Server server(*watcher->ServerCredentials());
  ASSERT_TRUE(CallForSerial(NewChannel(server.address(), AgencyCreds("tax"))).ok());

  ASSERT_TRUE(tellonce::testing::WriteCrl(pki(), crl_file(), 3600, {pki() + "/agencies/tax.pem"}));
  ASSERT_TRUE(watcher->Reload().ok());
  ::testing::internal::CaptureStderr();
  absl::StatusOr<std::string> revoked =
      CallForSerial(NewChannel(server.address(), AgencyCreds("tax")));
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(revoked.ok());
  EXPECT_THAT(log, HasSubstr("TLS handshake refused"));
  EXPECT_THAT(log, HasSubstr("spiffe://gov.example/agency/tax"));
  EXPECT_THAT(log, HasSubstr("revoked"));
  // Control: an agency the CRL does not name still gets in.
  EXPECT_TRUE(CallForSerial(NewChannel(server.address(), AgencyCreds("bank"))).ok());
}

TEST_F(TlsWatchTest, ExpiredCrlFailsClosedAndRecoversWhenACurrentCrlIsOnDisk) {
  ASSERT_TRUE(tellonce::testing::WriteCrl(pki(), crl_file(), 3));
  auto watcher = StartWatcher(/*with_crl=*/true, absl::Seconds(1));
  ASSERT_NE(watcher, nullptr);
  Server server(*watcher->ServerCredentials());
  ASSERT_TRUE(watcher->status().usable.ok()) << watcher->status().usable;
  ASSERT_TRUE(watcher->status().crl_next_update.has_value());
  ASSERT_TRUE(CallForSerial(NewChannel(server.address(), AgencyCreds("tax"))).ok());

  ASSERT_TRUE(Eventually([&] { return !watcher->status().usable.ok(); }));
  const TlsStatus expired = watcher->status();
  EXPECT_EQ(expired.usable.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(expired.usable.message(), HasSubstr("CRL " + pki() + "/crl/"));
  EXPECT_THAT(expired.usable.message(), HasSubstr("expired at"));
  // Fail closed: nobody gets in, not even an unrevoked agency.
  EXPECT_FALSE(CallForSerial(NewChannel(server.address(), AgencyCreds("tax"))).ok());
  EXPECT_FALSE(CallForSerial(NewChannel(server.address(), AgencyCreds("bank"))).ok());

  ASSERT_TRUE(tellonce::testing::WriteCrl(pki(), crl_file(), 3600));
  EXPECT_TRUE(Eventually(
      [&] { return CallForSerial(NewChannel(server.address(), AgencyCreds("tax"))).ok(); }));
  EXPECT_TRUE(watcher->status().usable.ok()) << watcher->status().usable;
}

TEST_F(TlsWatchTest, ClientChannelRefusesAServerRevokedAfterTheChannelWasMade) {
  // The agency's side: its watcher checks the broker's certificate against the CRL.
  TlsPaths agency = {.ca_file = pki() + "/ca.pem",
                     .cert_file = pki() + "/agencies/tax.pem",
                     .key_file = pki() + "/agencies/tax.key",
                     .crl_dir = pki() + "/crl"};
  auto watcher = TlsMaterialWatcher::Start(
      agency, {.poll_interval = absl::ZeroDuration(), .staging_parent = dir_.path()});
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  auto server_creds = MakeServerCredentials(BrokerPaths(/*with_crl=*/false));
  ASSERT_TRUE(server_creds.ok());
  Server server(*server_creds);
  auto creds = (*watcher)->ChannelCredentials(BrokerSpiffeId(kTrustDomain));
  ASSERT_TRUE(creds.ok());
  ASSERT_TRUE(CallForSerial(NewChannel(server.address(), *creds)).ok());
  ASSERT_TRUE(tellonce::testing::WriteCrl(pki(), crl_file(), 3600, {pki() + "/broker.pem"}));
  ASSERT_TRUE((*watcher)->Reload().ok());
  EXPECT_FALSE(CallForSerial(NewChannel(server.address(), *creds)).ok());
}

TEST_F(TlsWatchTest, StartRefusesAnExpiredCrlAndAMismatchedKey) {
  ASSERT_TRUE(tellonce::testing::WriteCrl(pki(), crl_file(), -10));
  auto expired = TlsMaterialWatcher::Start(BrokerPaths(true), {.staging_parent = dir_.path()});
  EXPECT_THAT(expired.status().message(), HasSubstr("CRL expired"));
  WriteAll(pki() + "/broker.key", ReadAll(pki() + "/agencies/tax.key"));
  auto mismatched = TlsMaterialWatcher::Start(BrokerPaths(false), {.staging_parent = dir_.path()});
  EXPECT_THAT(mismatched.status().message(), HasSubstr("does not match"));
}

TEST_F(TlsWatchTest, StatusReportsExpiryTimesAndTheStagingDirectoryIsPrivate) {
  auto watcher = StartWatcher(/*with_crl=*/true);
  ASSERT_NE(watcher, nullptr);
  const TlsStatus s = watcher->status();
  EXPECT_GT(s.cert_not_after, absl::Now() + absl::Hours(24 * 29));
  ASSERT_TRUE(s.crl_next_update.has_value());
  EXPECT_GT(*s.crl_next_update, absl::Now());
  EXPECT_TRUE(s.usable.ok());
  EXPECT_LE(s.last_load, absl::Now());
  int staging = 0;
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    if (e.path().filename().string().rfind("tellonce-tls.", 0) != 0) continue;
    ++staging;
    EXPECT_EQ(fs::status(e.path()).permissions() & fs::perms::all, fs::perms::owner_all);
  }
  EXPECT_EQ(staging, 1);
  watcher.reset();
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_NE(e.path().filename().string().rfind("tellonce-tls.", 0), 0u) << "left behind";
  }
}

TEST_F(TlsWatchTest, WarnsAtStartWhenTheCertificateOrCrlExpiresWithinTheWarningTime) {
  // The dev PKI's certificate and CRL last 30 days: a 60-day warning time covers both,
  // the default 7 days neither.
  ::testing::internal::CaptureStderr();
  auto warned =
      TlsMaterialWatcher::Start(BrokerPaths(true), {.poll_interval = absl::ZeroDuration(),
                                                    .expiry_warning = absl::Hours(24 * 60),
                                                    .staging_parent = dir_.path()});
  ASSERT_TRUE(warned.ok()) << warned.status();
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, HasSubstr("WARN"));
  EXPECT_THAT(log, HasSubstr("TLS certificate expires soon"));
  EXPECT_THAT(log, HasSubstr("CRL next update is near"));

  ::testing::internal::CaptureStderr();
  auto quiet = TlsMaterialWatcher::Start(
      BrokerPaths(true), {.poll_interval = absl::ZeroDuration(), .staging_parent = dir_.path()});
  ASSERT_TRUE(quiet.ok()) << quiet.status();
  log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, Not(HasSubstr("expires soon")));
  EXPECT_THAT(log, Not(HasSubstr("next update is near")));
}

}  // namespace
}  // namespace tellonce::certs
