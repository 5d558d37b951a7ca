// The real tellonce-broker process picks up a new certificate, a new CRL and a
// recovered CRL from disk without a restart, over real mutual TLS on 127.0.0.1.

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certs/tls.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "proto/textproto.h"
#include "tests/integration/harness.h"
#include "tests/testing/peer_certificate.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_ca.h"

namespace tellonce::testing {
namespace {

using ::testing::HasSubstr;

// grpc.health.v1.Health/Check (an empty request) on `channel`; on success the serial
// of the certificate the broker presented on that connection.
absl::StatusOr<std::string> HealthCheckSerial(const std::shared_ptr<grpc::Channel>& channel) {
  return CallForPeerSerial(channel, "/grpc.health.v1.Health/Check");
}

// A PKI of its own and a broker polling its TLS files every second.
class TlsReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Pki> pki = MakePki(dir_.path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
  }

  // Starts the broker; the CRL must be current at start.
  void StartBroker() {
    broker_ =
        std::make_unique<BrokerProcess>(dir_.path() + "/broker", pki_, SampleDirectoryFor(pki_));
    absl::StatusOr<std::string> config = ReadFileToString(broker_->config_path());
    ASSERT_TRUE(config.ok());
    std::ofstream(broker_->config_path())
        << absl::StrReplaceAll(*config, {{"tls {\n", "tls {\n  reload_interval_seconds: 1\n"}});
    absl::Status started = broker_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  // A channel of its own (a new connection) as `agency`, expecting the broker's SPIFFE
  // id (not read from the broker's certificate file, which a test may break).
  std::shared_ptr<grpc::Channel> Channel(const std::string& agency) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
        certs::MakeChannelCredentials({.ca_file = pki_.ca(),
                                       .cert_file = pki_.cert(agency),
                                       .key_file = pki_.key(agency),
                                       .crl_dir = ""},
                                      "spiffe://tellonce.local/broker");
    EXPECT_TRUE(creds.ok()) << creds.status();
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(broker_->address(), *creds, args);
  }

  absl::StatusOr<std::string> NewConnection(const std::string& agency) {
    return HealthCheckSerial(Channel(agency));
  }

  std::string crl_file() const { return pki_.dir + "/crl/ca.crl.pem"; }

  TempDir dir_;
  Pki pki_;
  std::unique_ptr<BrokerProcess> broker_;
};

TEST_F(TlsReloadTest, NewBrokerCertificateServesNewConnectionsAndOldConnectionsKeepWorking) {
  StartBroker();
  const std::string old_serial = SerialOfPem(*ReadFileToString(pki_.broker_cert()));
  auto old_channel = Channel("tax");
  ASSERT_EQ(HealthCheckSerial(old_channel).value_or("failed"), old_serial);

  const std::string new_serial =
      IssueLeaf(pki_.dir, "spiffe://tellonce.local/broker", pki_.broker_cert(), pki_.broker_key());
  ASSERT_FALSE(new_serial.empty());
  ASSERT_NE(new_serial, old_serial);
  EXPECT_TRUE(Eventually([&] { return NewConnection("tax").value_or("") == new_serial; }))
      << broker_->log();
  // The connection made before keeps working, on the certificate it was made with.
  EXPECT_EQ(HealthCheckSerial(old_channel).value_or("failed"), old_serial);
  EXPECT_THAT(broker_->log(), HasSubstr("TLS material reloaded"));
}

TEST_F(TlsReloadTest, CrlRevokingAnAgencyRefusesItsNewConnectionsWithoutRestart) {
  StartBroker();
  ASSERT_TRUE(NewConnection("tax").ok());
  ASSERT_TRUE(WriteCrl(pki_.dir, crl_file(), 24 * 3600, {pki_.cert("tax")}));
  EXPECT_TRUE(Eventually([&] { return !NewConnection("tax").ok(); })) << broker_->log();
  EXPECT_TRUE(NewConnection("bank").ok()) << "an unrevoked agency must still get in";
  EXPECT_TRUE(Eventually([&] {
    return broker_->log().find("spiffe://tellonce.local/agency/tax") != std::string::npos;
  })) << broker_->log();
  EXPECT_THAT(broker_->log(), HasSubstr("TLS handshake refused"));
}

TEST_F(TlsReloadTest, ExpiredCrlFailsClosedAndACurrentOneRecoversWithoutRestart) {
  ASSERT_TRUE(WriteCrl(pki_.dir, crl_file(), 4));
  StartBroker();
  ASSERT_TRUE(NewConnection("tax").ok());
  // Past nextUpdate: every agency is refused, and the broker says why.
  EXPECT_TRUE(Eventually([&] { return !NewConnection("bank").ok(); })) << broker_->log();
  EXPECT_FALSE(NewConnection("tax").ok());
  EXPECT_TRUE(Eventually([&] {
    return broker_->log().find("TLS material not usable") != std::string::npos;
  })) << broker_->log();
  EXPECT_THAT(broker_->log(), HasSubstr("expired at"));
  // The probe says why, without a client certificate.
  std::string body;
  EXPECT_EQ(HttpGet(broker_->admin_port(), "/readyz", &body), 503);
  EXPECT_THAT(body, HasSubstr("tls: CRL"));
  EXPECT_THAT(body, HasSubstr("expired at"));
  std::string metrics;
  EXPECT_EQ(HttpGet(broker_->admin_port(), "/metrics", &metrics), 200);
  EXPECT_THAT(metrics, HasSubstr("\ntellonce_tls_usable 0\n"));
  EXPECT_THAT(metrics, HasSubstr("\ntellonce_tls_crl_expiry_seconds -"));

  ASSERT_TRUE(WriteCrl(pki_.dir, crl_file(), 24 * 3600));
  EXPECT_TRUE(Eventually([&] { return NewConnection("tax").ok(); })) << broker_->log();
  EXPECT_TRUE(NewConnection("bank").ok());
  EXPECT_EQ(HttpGet(broker_->admin_port(), "/readyz", &body), 200) << body;
  EXPECT_EQ(HttpGet(broker_->admin_port(), "/metrics", &metrics), 200);
  EXPECT_THAT(metrics, HasSubstr("\ntellonce_tls_usable 1\n"));
}

TEST_F(TlsReloadTest, CorruptCertificateIsRefusedAndTheOldOneKeepsServing) {
  StartBroker();
  const std::string old_serial = SerialOfPem(*ReadFileToString(pki_.broker_cert()));
  { std::ofstream(pki_.broker_cert() + ".tmp") << "garbage\n"; }
  ASSERT_EQ(std::rename((pki_.broker_cert() + ".tmp").c_str(), pki_.broker_cert().c_str()), 0);
  EXPECT_TRUE(Eventually([&] {
    return broker_->log().find("TLS reload refused") != std::string::npos;
  })) << broker_->log();
  EXPECT_THAT(broker_->log(), HasSubstr(absl::StrCat("tls.cert_file ", pki_.broker_cert())));
  absl::SleepFor(absl::Seconds(2));  // past gRPC's refresh of the staged files
  EXPECT_EQ(NewConnection("tax").value_or("failed"), old_serial);
}

}  // namespace
}  // namespace tellonce::testing
