// Connectors pin the broker (issue 13, deliverable 6): a certificate the federation CA
// issued with the broker's SPIFFE id, but over another key, is refused by a connector
// that pins the broker's key, both when it calls the connector straight and when an
// agency's channel to the broker meets it. Real processes, mutual TLS on 127.0.0.1.

#include <chrono>
#include <memory>
#include <string>

#include "certs/identity.h"
#include "certs/tls.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "proto/textproto.h"
#include "tellonce/v1/connector.grpc.pb.h"
#include "tellonce/v1/transparency.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_ca.h"

namespace tellonce::testing {
namespace {

constexpr char kCitizen[] = "37605030299";
constexpr char kBrokerId[] = "spiffe://tellonce.local/broker";

class BrokerPinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Pki> pki = MakePki(dir_.path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    ASSERT_EQ(pki_.broker_pin().size(), 44u) << "make-dev-pki writes broker.pin";
    // Another broker certificate from the same CA, over another key.
    rogue_cert_ = dir_.path() + "/rogue-broker.pem";
    rogue_key_ = dir_.path() + "/rogue-broker.key";
    ASSERT_FALSE(IssueLeaf(pki_.dir, kBrokerId, rogue_cert_, rogue_key_).empty());
  }

  // FetchAttributes on `connector` straight, presenting `cert`/`key` as the client.
  grpc::Status FetchDirect(const ConnectorProcess& connector, const std::string& cert,
                           const std::string& key, tellonce::v1::FetchAttributesResponse* out) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = certs::MakeChannelCredentials(
        {.ca_file = pki_.ca(), .cert_file = cert, .key_file = key, .crl_dir = ""},
        "spiffe://tellonce.local/agency/bank");
    EXPECT_TRUE(creds.ok()) << creds.status();
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    auto stub = tellonce::v1::ConnectorService::NewStub(
        grpc::CreateCustomChannel(connector.address(), *creds, args));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    tellonce::v1::FetchAttributesRequest request;
    request.set_citizen_id(kCitizen);
    request.add_attributes("bank.account_iban");
    return stub->FetchAttributes(&context, request, out);
  }

  TempDir dir_;
  Pki pki_;
  std::string rogue_cert_;
  std::string rogue_key_;
};

// Issue 13: "a broker-SAN certificate from the dev CA, presented straight to the bank
// connector, got bank data with no entry in the broker's log".
TEST_F(BrokerPinTest, PinnedConnectorRefusesABrokerIdentityOverAnotherKey) {
  ConnectorProcess bank(AgencyBinary("bank"), dir_.path() + "/bank", pki_, "bank",
                        SampleConnectorFile("bank-records.textproto"), FreePort(),
                        "broker_pins: \"" + pki_.broker_pin() + "\"");
  ASSERT_TRUE(bank.Start().ok()) << bank.log();

  tellonce::v1::FetchAttributesResponse response;
  grpc::Status status = FetchDirect(bank, rogue_cert_, rogue_key_, &response);
  EXPECT_EQ(status.error_code(), grpc::UNAUTHENTICATED) << status.error_message();
  EXPECT_NE(status.error_message().find("not pinned"), std::string::npos) << status.error_message();
  EXPECT_EQ(response.attributes_size(), 0);

  // The pinned key itself is served.
  response.Clear();
  status = FetchDirect(bank, pki_.broker_cert(), pki_.broker_key(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.attributes_size(), 1);
}

TEST_F(BrokerPinTest, UnpinnedConnectorStillTrustsTheIdentityAlone) {
  ConnectorProcess bank(AgencyBinary("bank"), dir_.path() + "/bank", pki_, "bank",
                        SampleConnectorFile("bank-records.textproto"), FreePort());
  ASSERT_TRUE(bank.Start().ok()) << bank.log();
  tellonce::v1::FetchAttributesResponse response;
  grpc::Status status = FetchDirect(bank, rogue_cert_, rogue_key_, &response);
  EXPECT_TRUE(status.ok()) << "without pins the SPIFFE id is all a connector checks: "
                           << status.error_message();
}

TEST_F(BrokerPinTest, ConnectorConfigRefusesAMalformedPin) {
  ConnectorProcess bank(AgencyBinary("bank"), dir_.path() + "/bank", pki_, "bank",
                        SampleConnectorFile("bank-records.textproto"), FreePort(),
                        "broker_pins: \"not-a-pin\"");
  EXPECT_FALSE(bank.Start().ok());
  EXPECT_NE(bank.log().find("broker_pins[0]"), std::string::npos) << bank.log();
}

// The agency side: a channel to the broker with pins reaches the broker whose key is
// pinned, and refuses a broker whose key is not, in the handshake.
TEST_F(BrokerPinTest, AgencyChannelToTheBrokerChecksThePin) {
  const std::string directory = dir_.path() + "/directory.textproto";
  ASSERT_TRUE(WriteDirectoryWithPorts(directory, {}).ok());
  BrokerProcess broker(dir_.path() + "/broker", pki_, directory);
  ASSERT_TRUE(broker.Start().ok()) << broker.log();

  auto call = [&](const std::string& pin) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
        certs::MakeChannelCredentials({.ca_file = pki_.ca(),
                                       .cert_file = pki_.cert("portal"),
                                       .key_file = pki_.key("portal"),
                                       .crl_dir = ""},
                                      kBrokerId, {pin});
    EXPECT_TRUE(creds.ok()) << creds.status();
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    auto stub = tellonce::v1::TransparencyService::NewStub(
        grpc::CreateCustomChannel(broker.address(), *creds, args));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    tellonce::v1::GetCheckpointRequest request;
    tellonce::v1::GetCheckpointResponse response;
    return stub->GetCheckpoint(&context, request, &response);
  };
  grpc::Status pinned = call(pki_.broker_pin());
  EXPECT_TRUE(pinned.ok()) << pinned.error_message();
  absl::StatusOr<std::string> other_pin = certs::CertificatePin(*ReadFileToString(rogue_cert_));
  ASSERT_TRUE(other_pin.ok());
  grpc::Status refused = call(*other_pin);
  EXPECT_EQ(refused.error_code(), grpc::UNAVAILABLE) << refused.error_message();
}

}  // namespace
}  // namespace tellonce::testing
