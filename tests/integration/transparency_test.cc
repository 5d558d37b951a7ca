// Citizen transparency across real processes: the broker, the civil registry and bank
// connectors, mutual TLS on 127.0.0.1, and the `tellonce` CLI. A citizen's history
// through the portal, what consumers and providers may see, proofs against signed
// checkpoints, offline verification of a tampered copy of the broker's data, and a
// crash in the middle of exchange traffic.

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certs/merkle.h"
#include "gtest/gtest.h"
#include "proto/textproto.h"
#include "storage/rocksdb/database.h"
#include "tellonce/v1/exchange.grpc.pb.h"
#include "tellonce/v1/transparency.grpc.pb.h"
#include "tests/integration/harness.h"

namespace tellonce::testing {
namespace {

using tellonce::v1::AccessEvent;
using tellonce::v1::GetAttributesResponse;
using tellonce::v1::LoggedAccessEvent;

// Citizens present in both sample data files.
constexpr char kCitizen[] = "37605030299";
constexpr char kOtherCitizen[] = "49403136526";

class TransparencyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    absl::StatusOr<Pki> pki = MakePki(dir_->path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new Pki(*pki);
    absl::StatusOr<SampleConnectors> connectors = StartSampleConnectors(dir_->path(), *pki_);
    ASSERT_TRUE(connectors.ok()) << connectors.status();
    registry_ = connectors->registry.release();
    bank_ = connectors->bank.release();
    directory_ = new std::string(connectors->directory_file);
  }
  static void TearDownTestSuite() {
    delete bank_;
    delete registry_;
    delete directory_;
    delete pki_;
    delete dir_;
  }

  // Each test has a broker of its own, with an empty log.
  void SetUp() override {
    broker_ = std::make_unique<BrokerProcess>(work_.path() + "/broker", *pki_, *directory_);
    ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
  }

  std::string Consent(const std::string& citizen, const std::string& consumer,
                      std::vector<std::string> attributes, const std::string& purpose) {
    absl::StatusOr<std::string> id = GrantConsent(*pki_, broker_->address(),
                                                  {.citizen = citizen,
                                                   .consumer = consumer,
                                                   .attributes = std::move(attributes),
                                                   .purpose = purpose,
                                                   .mode = tellonce::v1::UNTIL_EXPIRY,
                                                   .lifetime = absl::Hours(24),
                                                   .request_id = ""});
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }

  grpc::Status Fetch(const std::string& consumer, const std::string& citizen,
                     std::vector<std::string> attributes, const std::string& purpose,
                     GetAttributesResponse* response, absl::Duration deadline = absl::Seconds(10)) {
    return GetAttributes(*pki_, broker_->address(), consumer, citizen, attributes, purpose,
                         response, deadline);
  }

  // Fetch that must succeed; returns the exchange id.
  std::string MustFetch(const std::string& consumer, const std::string& citizen,
                        std::vector<std::string> attributes, const std::string& purpose) {
    GetAttributesResponse response;
    grpc::Status status = Fetch(consumer, citizen, std::move(attributes), purpose, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_FALSE(response.exchange_id().empty());
    return response.exchange_id();
  }

  std::unique_ptr<tellonce::v1::TransparencyService::Stub> Transparency(const std::string& agency) {
    return tellonce::v1::TransparencyService::NewStub(
        AgencyChannel(*pki_, agency, broker_->address()));
  }

  // Every event about `citizen` that `agency` may see, all pages.
  grpc::Status ListAll(const std::string& agency, const std::string& citizen,
                       std::vector<LoggedAccessEvent>* events) {
    events->clear();
    auto stub = Transparency(agency);
    tellonce::v1::ListAccessEventsRequest request;
    request.set_citizen_id(citizen);
    request.set_page_size(500);
    while (true) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      tellonce::v1::ListAccessEventsResponse response;
      AddCitizenAssertion(&context, *pki_, request.citizen_id());
      grpc::Status status = stub->ListAccessEvents(&context, request, &response);
      if (!status.ok()) return status;
      events->insert(events->end(), response.events().begin(), response.events().end());
      if (response.next_page_token().empty()) return grpc::Status::OK;
      request.set_page_token(response.next_page_token());
    }
  }

  // `tellonce` with the connection flags of `agency`.
  int Cli(const std::string& agency, std::vector<std::string> args, std::string* output) {
    // A portal's citizen-bound commands carry an ID token minted with the dev
    // identity provider's key (the CLI reads TELLONCE_DEV_IDP_KEY).
    if (agency == "portal") {
      setenv("TELLONCE_DEV_IDP_KEY", pki_->idp_key().c_str(), 1);
    } else {
      unsetenv("TELLONCE_DEV_IDP_KEY");
    }
    std::vector<std::string> argv = {CliBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--broker", broker_->address(), "--ca", pki_->ca(), "--cert",
                             pki_->cert(agency), "--key", pki_->key(agency)});
    return RunCommand(argv, output);
  }
  // `tellonce` offline, with nothing but the broker's certificate.
  int OfflineCli(std::vector<std::string> args, std::string* output) {
    std::vector<std::string> argv = {CliBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(),
                {"--broker-cert", pki_->broker_cert(), "--signing-keys", pki_->signing_keys()});
    return RunCommand(argv, output);
  }

  // Saves a fresh signed checkpoint to `path` through the CLI; returns its body.
  tellonce::v1::Checkpoint SaveCheckpoint(const std::string& path, const std::string& agency) {
    std::string out;
    EXPECT_EQ(Cli(agency,
                  {"audit", "checkpoint", "--fresh", "--out", path, "--broker-cert",
                   pki_->broker_cert(), "--signing-keys", pki_->signing_keys()},
                  &out),
              0)
        << out;
    EXPECT_TRUE(absl::StrContains(out, "checkpoint OK")) << out;
    tellonce::v1::Checkpoint checkpoint;
    absl::StatusOr<std::string> bytes = ReadFileToString(path);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    tellonce::v1::SignedCheckpoint signed_checkpoint;
    EXPECT_TRUE(bytes.ok() && signed_checkpoint.ParseFromString(*bytes));
    EXPECT_TRUE(checkpoint.ParseFromString(signed_checkpoint.body()));
    EXPECT_TRUE(absl::StrContains(out, absl::StrCat("size ", checkpoint.tree_size()))) << out;
    return checkpoint;
  }

  // Some allowed and some denied exchanges about kCitizen, by tax and benefits.
  // Returns the exchange ids, by consumer.
  std::map<std::string, std::vector<std::string>> MakeTraffic() {
    std::map<std::string, std::vector<std::string>> ids;
    Consent(kCitizen, "tax", {"bank.interest_paid", "person.name"}, "TAX_DEDUCTION_CHECK");
    // Allowed by consent, from two providers.
    ids["tax"].push_back(
        MustFetch("tax", kCitizen, {"bank.interest_paid", "person.name"}, "TAX_DEDUCTION_CHECK"));
    // Allowed by mandate.
    ids["tax"].push_back(MustFetch("tax", kCitizen, {"person.name"}, "TAX_ASSESSMENT"));
    // Denied: no basis.
    ids["tax"].push_back(MustFetch("tax", kCitizen, {"bank.account_iban"}, "TAX_DEDUCTION_CHECK"));
    Consent(kCitizen, "benefits", {"person.address"}, "TAX_ASSESSMENT");
    ids["benefits"].push_back(
        MustFetch("benefits", kCitizen, {"person.address"}, "TAX_ASSESSMENT"));
    // Denied: another consumer's mandate is no basis.
    ids["benefits"].push_back(MustFetch("benefits", kCitizen, {"person.name"}, "TAX_ASSESSMENT"));
    // Another citizen's exchange, which no list about kCitizen may show.
    ids["other"].push_back(MustFetch("tax", kOtherCitizen, {"person.name"}, "TAX_ASSESSMENT"));
    return ids;
  }

  static TempDir* dir_;
  static Pki* pki_;
  static ConnectorProcess* registry_;
  static ConnectorProcess* bank_;
  static std::string* directory_;

  TempDir work_;
  std::unique_ptr<BrokerProcess> broker_;
};

TempDir* TransparencyTest::dir_ = nullptr;
Pki* TransparencyTest::pki_ = nullptr;
ConnectorProcess* TransparencyTest::registry_ = nullptr;
ConnectorProcess* TransparencyTest::bank_ = nullptr;
std::string* TransparencyTest::directory_ = nullptr;

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST_F(TransparencyTest, PortalListsTheHistoryAndEveryEventIsProvenAgainstACheckpoint) {
  const std::string consent =
      Consent(kCitizen, "tax", {"bank.interest_paid", "person.name"}, "TAX_DEDUCTION_CHECK");
  std::vector<std::string> exchanges;
  exchanges.push_back(
      MustFetch("tax", kCitizen, {"bank.interest_paid", "person.name"}, "TAX_DEDUCTION_CHECK"));
  const std::string old_checkpoint_file = work_.path() + "/old.checkpoint";
  const tellonce::v1::Checkpoint old_checkpoint = SaveCheckpoint(old_checkpoint_file, "tax");
  EXPECT_GE(old_checkpoint.tree_size(), 2u);  // one event per provider at least
  exchanges.push_back(MustFetch("tax", kCitizen, {"person.name"}, "TAX_ASSESSMENT"));
  const std::string denied =
      MustFetch("tax", kCitizen, {"bank.account_iban"}, "TAX_DEDUCTION_CHECK");
  exchanges.push_back(denied);
  exchanges.push_back(MustFetch("benefits", kCitizen, {"person.address"}, "TAX_ASSESSMENT"));
  MustFetch("tax", kOtherCitizen, {"person.name"}, "TAX_ASSESSMENT");

  // The portal sees every event about the citizen, denials included, and nothing else.
  std::vector<LoggedAccessEvent> events;
  grpc::Status status = ListAll("portal", kCitizen, &events);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::set<std::string> listed_exchanges;
  bool saw_consent = false, saw_mandate = false, saw_denial = false;
  uint64_t last_index = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const AccessEvent& e = events[i].event();
    EXPECT_EQ(e.citizen_id(), kCitizen);
    if (i > 0) {
      EXPECT_GT(events[i].index(), last_index) << "oldest first";
    }
    last_index = events[i].index();
    listed_exchanges.insert(e.exchange_id());
    if (e.basis().consent_id() == consent && e.outcome() == AccessEvent::ALLOWED) {
      saw_consent = true;
      EXPECT_EQ(e.purpose(), "TAX_DEDUCTION_CHECK");
    }
    if (e.basis().mandate_id() == "income-tax-act-identity") {
      saw_mandate = true;
      EXPECT_EQ(e.basis().legal_reference(), "Income Tax Act s. 12(3) (example)");
      EXPECT_EQ(e.outcome(), AccessEvent::ALLOWED);
    }
    if (e.exchange_id() == denied) {
      saw_denial = true;
      EXPECT_EQ(e.outcome(), AccessEvent::DENIED);
      EXPECT_EQ(e.code(), tellonce::v1::RESULT_NO_BASIS);
      EXPECT_EQ(e.consumer(), "tax");
      EXPECT_EQ(e.attributes_size(), 1);
    }
  }
  for (const std::string& x : exchanges) EXPECT_TRUE(listed_exchanges.count(x)) << x;
  EXPECT_EQ(listed_exchanges.size(), exchanges.size());
  EXPECT_TRUE(saw_consent);
  EXPECT_TRUE(saw_mandate);
  EXPECT_TRUE(saw_denial);

  // The same through the CLI, readable.
  std::string out;
  ASSERT_EQ(Cli("portal", {"access", "list", "--citizen", kCitizen, "--all"}, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, absl::StrCat(events.size(), " access event(s)"))) << out;
  EXPECT_TRUE(absl::StrContains(out, "DENIED")) << out;
  EXPECT_TRUE(absl::StrContains(out, "RESULT_NO_BASIS")) << out;
  EXPECT_TRUE(absl::StrContains(out, "consent " + consent)) << out;
  EXPECT_TRUE(
      absl::StrContains(out, "mandate income-tax-act-identity (Income Tax Act s. 12(3) (example))"))
      << out;
  EXPECT_TRUE(absl::StrContains(out, "benefits")) << out;
  // A time range that ends before everything shows nothing.
  ASSERT_EQ(Cli("portal", {"access", "list", "--citizen", kCitizen, "--to", "2001-01-01T00:00:00Z"},
                &out),
            0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "0 access event(s)")) << out;

  // A fresh checkpoint covers every event acknowledged before it.
  const std::string new_checkpoint_file = work_.path() + "/new.checkpoint";
  const tellonce::v1::Checkpoint checkpoint = SaveCheckpoint(new_checkpoint_file, "portal");
  EXPECT_GT(checkpoint.tree_size(), last_index);
  EXPECT_GT(checkpoint.tree_size(), old_checkpoint.tree_size());
  EXPECT_EQ(checkpoint.issuer(), "spiffe://tellonce.local/broker");
  absl::StatusOr<certs::Hash> root = certs::HashFromBytes(checkpoint.root_hash());
  ASSERT_TRUE(root.ok());

  // Every event of the log has an inclusion proof that verifies, checked here...
  auto stub = Transparency("portal");
  for (uint64_t i = 0; i < checkpoint.tree_size(); ++i) {
    tellonce::v1::GetInclusionProofRequest request;
    request.set_index(i);
    request.set_tree_size(checkpoint.tree_size());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    tellonce::v1::GetInclusionProofResponse response;
    status = stub->GetInclusionProof(&context, request, &response);
    ASSERT_TRUE(status.ok()) << i << ": " << status.error_message();
    std::vector<certs::Hash> path;
    for (const std::string& node : response.path()) {
      absl::StatusOr<certs::Hash> h = certs::HashFromBytes(node);
      ASSERT_TRUE(h.ok());
      path.push_back(*h);
    }
    EXPECT_TRUE(certs::VerifyInclusion(i, checkpoint.tree_size(),
                                       certs::LeafHash(response.event_bytes()), path, *root)
                    .ok())
        << i;
    AccessEvent event;
    EXPECT_TRUE(event.ParseFromString(response.event_bytes()));
  }
  // ... and through the CLI, for the citizen's events.
  for (const LoggedAccessEvent& e : events) {
    ASSERT_EQ(Cli("portal",
                  {"audit", "prove", "--index", std::to_string(e.index()), "--checkpoint",
                   new_checkpoint_file, "--broker-cert", pki_->broker_cert(), "--signing-keys",
                   pki_->signing_keys()},
                  &out),
              0)
        << out;
    EXPECT_TRUE(absl::StartsWith(out, absl::StrCat("OK: event ", e.index()))) << out;
    EXPECT_TRUE(absl::StrContains(out, e.event().exchange_id())) << out;
  }

  // The new checkpoint extends the old one.
  ASSERT_EQ(Cli("bank",
                {"audit", "prove", "--old", old_checkpoint_file, "--new", new_checkpoint_file,
                 "--broker-cert", pki_->broker_cert(), "--signing-keys", pki_->signing_keys()},
                &out),
            0)
      << out;
  EXPECT_TRUE(absl::StartsWith(out, "OK: ")) << out;

  // A checkpoint file with one changed byte is refused.
  absl::StatusOr<std::string> bytes = ReadFileToString(new_checkpoint_file);
  ASSERT_TRUE(bytes.ok());
  tellonce::v1::SignedCheckpoint forged;
  ASSERT_TRUE(forged.ParseFromString(*bytes));
  tellonce::v1::Checkpoint forged_body = checkpoint;
  forged_body.set_tree_size(checkpoint.tree_size() - 1);
  forged.set_body(forged_body.SerializeAsString());
  const std::string forged_file = work_.path() + "/forged.checkpoint";
  std::ofstream(forged_file, std::ios::binary) << forged.SerializeAsString();
  EXPECT_EQ(Cli("portal",
                {"audit", "prove", "--index", "0", "--checkpoint", forged_file, "--broker-cert",
                 pki_->broker_cert(), "--signing-keys", pki_->signing_keys()},
                &out),
            1)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "FAILED")) << out;
  EXPECT_EQ(Cli("portal",
                {"audit", "prove", "--old", old_checkpoint_file, "--new", forged_file,
                 "--broker-cert", pki_->broker_cert(), "--signing-keys", pki_->signing_keys()},
                &out),
            1)
      << out;
}

// Issue 13: `to` = 9999-12-31 overflowed int64 nanoseconds (past 2262) and the
// history came back empty, telling the citizen nobody had accessed their data.
TEST_F(TransparencyTest, HistoryUpToTheLastRepresentableDayReturnsTheEvents) {
  MakeTraffic();
  std::vector<LoggedAccessEvent> all;
  ASSERT_TRUE(ListAll("portal", kCitizen, &all).ok());
  ASSERT_FALSE(all.empty());

  auto stub = Transparency("portal");
  auto list = [&](int64_t from_seconds, int64_t to_seconds, int32_t to_nanos,
                  tellonce::v1::ListAccessEventsResponse* response) {
    tellonce::v1::ListAccessEventsRequest request;
    request.set_citizen_id(kCitizen);
    request.set_page_size(500);
    request.mutable_from()->set_seconds(from_seconds);
    request.mutable_to()->set_seconds(to_seconds);
    request.mutable_to()->set_nanos(to_nanos);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    AddCitizenAssertion(&context, *pki_, kCitizen);
    return stub->ListAccessEvents(&context, request, response);
  };
  constexpr int64_t kYear1 = -62135596800;     // 0001-01-01T00:00:00Z
  constexpr int64_t kYear9999 = 253402300799;  // 9999-12-31T23:59:59Z
  tellonce::v1::ListAccessEventsResponse response;
  grpc::Status status = list(kYear1, kYear9999, 999999999, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(static_cast<size_t>(response.events_size()), all.size());

  // Past the range of google.protobuf.Timestamp: refused, naming the field.
  response.Clear();
  status = list(kYear1, kYear9999 + 1, 0, &response);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(status.error_message(), "to: ")) << status.error_message();
  EXPECT_EQ(response.events_size(), 0);
  status = list(kYear1 - 1, kYear9999, 0, &response);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(status.error_message(), "from: ")) << status.error_message();
}

TEST_F(TransparencyTest, ConsumersSeeOnlyTheirOwnEventsProvidersNoneAndOnlyAdminsExport) {
  std::map<std::string, std::vector<std::string>> ids = MakeTraffic();

  std::vector<LoggedAccessEvent> all;
  ASSERT_TRUE(ListAll("portal", kCitizen, &all).ok());
  std::vector<LoggedAccessEvent> tax;
  grpc::Status status = ListAll("tax", kCitizen, &tax);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(tax.empty());
  size_t expected_tax = 0;
  for (const LoggedAccessEvent& e : all) expected_tax += e.event().consumer() == "tax" ? 1 : 0;
  EXPECT_EQ(tax.size(), expected_tax);
  for (const LoggedAccessEvent& e : tax) {
    EXPECT_EQ(e.event().consumer(), "tax");
    EXPECT_TRUE(Contains(ids["tax"], e.event().exchange_id())) << e.event().exchange_id();
  }
  std::vector<LoggedAccessEvent> benefits;
  ASSERT_TRUE(ListAll("benefits", kCitizen, &benefits).ok());
  ASSERT_FALSE(benefits.empty());
  for (const LoggedAccessEvent& e : benefits) EXPECT_EQ(e.event().consumer(), "benefits");
  EXPECT_EQ(tax.size() + benefits.size(), all.size());

  std::string out;
  ASSERT_EQ(Cli("tax", {"access", "list", "--citizen", kCitizen, "--all"}, &out), 0) << out;
  EXPECT_FALSE(absl::StrContains(out, "benefits")) << out;
  EXPECT_TRUE(absl::StrContains(out, absl::StrCat(tax.size(), " access event(s)"))) << out;

  // A consumer gets proofs for its own events only.
  const std::string checkpoint_file = work_.path() + "/checkpoint";
  const tellonce::v1::Checkpoint checkpoint = SaveCheckpoint(checkpoint_file, "bank");
  auto tax_stub = Transparency("tax");
  auto prove = [&](uint64_t index) {
    tellonce::v1::GetInclusionProofRequest request;
    request.set_index(index);
    request.set_tree_size(checkpoint.tree_size());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    tellonce::v1::GetInclusionProofResponse response;
    grpc::Status s = tax_stub->GetInclusionProof(&context, request, &response);
    if (!s.ok()) {
      EXPECT_TRUE(response.event_bytes().empty());
    }
    return s;
  };
  EXPECT_TRUE(prove(tax.front().index()).ok());
  status = prove(benefits.front().index());
  EXPECT_EQ(status.error_code(), grpc::PERMISSION_DENIED) << status.error_message();
  EXPECT_EQ(Cli("tax",
                {"audit", "prove", "--index", std::to_string(benefits.front().index()),
                 "--checkpoint", checkpoint_file, "--broker-cert", pki_->broker_cert(),
                 "--signing-keys", pki_->signing_keys()},
                &out),
            1)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "PERMISSION_DENIED")) << out;

  // A provider may not list at all.
  std::vector<LoggedAccessEvent> none;
  status = ListAll("bank", kCitizen, &none);
  EXPECT_EQ(status.error_code(), grpc::PERMISSION_DENIED) << status.error_message();
  EXPECT_EQ(Cli("bank", {"access", "list", "--citizen", kCitizen}, &out), 1) << out;
  EXPECT_TRUE(absl::StrContains(out, "PERMISSION_DENIED")) << out;

  // Only the admin exports the raw log.
  for (const std::string agency : {"tax", "portal", "bank", "benefits"}) {
    auto stub = Transparency(agency);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    tellonce::v1::ExportAccessLogRequest request;
    tellonce::v1::ExportAccessLogResponse response;
    status = stub->ExportAccessLog(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::PERMISSION_DENIED) << agency;
    EXPECT_EQ(response.events_size(), 0) << agency;
  }
  const std::string export_file = work_.path() + "/log.export";
  EXPECT_EQ(Cli("portal", {"audit", "export", "--out", export_file}, &out), 1) << out;
  ASSERT_EQ(Cli("ops", {"audit", "export", "--out", export_file, "--page-size", "3"}, &out), 0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, absl::StrCat("exported ", checkpoint.tree_size()))) << out;
  // The export verifies offline against the checkpoint.
  ASSERT_EQ(
      OfflineCli({"audit", "verify", "--log", export_file, "--checkpoint", checkpoint_file}, &out),
      0)
      << out;
  EXPECT_TRUE(absl::StartsWith(
      out, absl::StrCat("OK: ", checkpoint.tree_size(),
                        " events verified against checkpoint of size ", checkpoint.tree_size())))
      << out;
}

// The broker's key of event `index` in the access_log column family.
std::string EventKey(uint64_t index) {
  std::string key = "e";
  for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(index >> shift));
  return key;
}

// Opens a copy of the broker's data with RocksDB, read-write, and changes it.
void Tamper(const std::string& data_dir,
            const std::function<void(rocksdb::DB*, rocksdb::ColumnFamilyHandle*)>& change) {
  absl::StatusOr<std::unique_ptr<storage::rocks::Database>> db =
      storage::rocks::Database::Open({.path = data_dir});
  ASSERT_TRUE(db.ok()) << db.status();
  change((*db)->db(), (*db)->family(storage::rocks::Family::kAccessLog));
}

rocksdb::WriteOptions Synced() {
  rocksdb::WriteOptions options;
  options.sync = true;
  return options;
}

// Issue 13: any agency could force 800-900 signed, synced checkpoints a second, and
// every one landed in the first export page until `audit export` failed.
TEST_F(TransparencyTest, FreshCheckpointFloodIsRateLimitedAndCoalescedAndTheLogStillExports) {
  MakeTraffic();
  std::atomic<int> ok{0}, limited{0}, other{0};
  std::mutex mu;
  std::set<std::string> signatures;
  std::atomic<bool> stop{false};
  // Exchanges keep the log growing meanwhile, so each request could need a new one.
  std::thread traffic([&] {
    while (!stop.load()) {
      GetAttributesResponse response;
      (void)Fetch("tax", kCitizen, {"person.name"}, "TAX_ASSESSMENT", &response);
    }
  });
  const absl::Time start = absl::Now();
  std::vector<std::thread> flooders;
  for (const std::string agency : {"tax", "bank", "registry", "benefits"}) {
    for (int t = 0; t < 2; ++t) {
      flooders.emplace_back([&, agency] {
        auto stub = Transparency(agency);
        for (int i = 0; i < 150; ++i) {
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          tellonce::v1::GetCheckpointRequest request;
          request.set_fresh(true);
          tellonce::v1::GetCheckpointResponse response;
          grpc::Status status = stub->GetCheckpoint(&context, request, &response);
          if (status.ok()) {
            ++ok;
            std::lock_guard<std::mutex> lock(mu);
            signatures.insert(response.checkpoint().signature());
          } else if (status.error_code() == grpc::RESOURCE_EXHAUSTED) {
            ++limited;
            EXPECT_TRUE(absl::StartsWith(
                status.error_message(),
                absl::StrCat("rate limit: fresh_checkpoint for agency ", agency, ": at most ")))
                << status.error_message();
          } else {
            ++other;
          }
        }
      });
    }
  }
  for (std::thread& t : flooders) t.join();
  const absl::Duration elapsed = absl::Now() - start;
  stop = true;
  traffic.join();
  EXPECT_EQ(other.load(), 0);
  // 1,200 requests: most refused by the per-agency buckets (burst 5, 2 per second) ...
  EXPECT_GT(limited.load(), 1000) << "ok " << ok.load() << " in " << elapsed;
  EXPECT_GT(ok.load(), 0);
  // ... and the admitted ones shared signatures: at most one a second, plus the ones
  // signed before the flood.
  EXPECT_LE(signatures.size(), static_cast<size_t>(absl::ToDoubleSeconds(elapsed)) + 3)
      << "in " << elapsed;

  // The whole log still exports (events and checkpoints in their own pages) and verifies.
  const std::string checkpoint_file = work_.path() + "/flood.checkpoint";
  tellonce::v1::Checkpoint checkpoint = SaveCheckpoint(checkpoint_file, "ops");
  const std::string export_file = work_.path() + "/flood.export";
  std::string out;
  ASSERT_EQ(Cli("ops", {"audit", "export", "--out", export_file}, &out), 0) << out;
  ASSERT_EQ(
      OfflineCli({"audit", "verify", "--log", export_file, "--checkpoint", checkpoint_file}, &out),
      0)
      << out;
  EXPECT_TRUE(absl::StartsWith(out, absl::StrCat("OK: ", checkpoint.tree_size(), " events")))
      << out;
}

TEST_F(TransparencyTest, OfflineVerificationPassesOnACopyAndNamesTheFirstTamperedEvent) {
  MakeTraffic();
  MakeTraffic();
  const std::string checkpoint_file = work_.path() + "/checkpoint";
  const tellonce::v1::Checkpoint checkpoint = SaveCheckpoint(checkpoint_file, "portal");
  ASSERT_GE(checkpoint.tree_size(), 10u);
  EXPECT_EQ(broker_->Terminate(), 0) << broker_->log();

  auto copy = [&](const std::string& name) {
    std::string path = work_.path() + "/" + name;
    std::filesystem::copy(broker_->data_dir(), path, std::filesystem::copy_options::recursive);
    return path;
  };
  auto verify = [&](const std::string& data_dir, std::string* out) {
    return OfflineCli({"audit", "verify", "--data-dir", data_dir, "--checkpoint", checkpoint_file},
                      out);
  };
  std::string out;

  // The untouched copy verifies, directly and through an offline export.
  const std::string intact = copy("intact");
  ASSERT_EQ(verify(intact, &out), 0) << out;
  EXPECT_TRUE(absl::StartsWith(
      out, absl::StrCat("OK: ", checkpoint.tree_size(),
                        " events verified against checkpoint of size ", checkpoint.tree_size())))
      << out;
  const std::string export_file = work_.path() + "/offline.export";
  ASSERT_EQ(RunCommand({CliBinary(), "audit", "export", "--data-dir", intact, "--out", export_file},
                       &out),
            0)
      << out;
  ASSERT_EQ(
      OfflineCli({"audit", "verify", "--log", export_file, "--checkpoint", checkpoint_file}, &out),
      0)
      << out;
  // Verification wrote nothing into the copy it read.
  ASSERT_EQ(verify(intact, &out), 0) << out;

  // One changed byte in one event.
  const uint64_t changed = 3;
  const std::string altered = copy("altered");
  Tamper(altered, [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* log) {
    std::string value;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), log, EventKey(changed), &value).ok());
    value[value.size() / 2] ^= 0x01;
    ASSERT_TRUE(db->Put(Synced(), log, EventKey(changed), value).ok());
  });
  EXPECT_EQ(verify(altered, &out), 1) << out;
  EXPECT_TRUE(absl::StartsWith(out, absl::StrCat("FAILED: first bad index ", changed, ":"))) << out;

  // One event deleted.
  const uint64_t deleted = 5;
  const std::string shortened = copy("deleted");
  Tamper(shortened, [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* log) {
    ASSERT_TRUE(db->Delete(Synced(), log, EventKey(deleted)).ok());
  });
  EXPECT_EQ(verify(shortened, &out), 1) << out;
  EXPECT_TRUE(absl::StartsWith(out, absl::StrCat("FAILED: first bad index ", deleted, ":"))) << out;

  // Two events swapped.
  const uint64_t first = 2, second = 7;
  const std::string swapped = copy("swapped");
  Tamper(swapped, [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* log) {
    std::string a, b;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), log, EventKey(first), &a).ok());
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), log, EventKey(second), &b).ok());
    ASSERT_NE(a, b);
    ASSERT_TRUE(db->Put(Synced(), log, EventKey(first), b).ok());
    ASSERT_TRUE(db->Put(Synced(), log, EventKey(second), a).ok());
  });
  EXPECT_EQ(verify(swapped, &out), 1) << out;
  EXPECT_TRUE(absl::StartsWith(out, absl::StrCat("FAILED: first bad index ", first, ":"))) << out;
  EXPECT_TRUE(absl::StrContains(out, absl::StrCat("signed at index ", second))) << out;
}

TEST_F(TransparencyTest, AfterAKillEveryAcknowledgedExchangeIsInTheLogAndTheLogStaysConsistent) {
  Consent(kCitizen, "tax", {"bank.interest_paid", "person.name"}, "TAX_DEDUCTION_CHECK");
  Consent(kCitizen, "benefits", {"person.address"}, "TAX_ASSESSMENT");
  MakeTraffic();
  const std::string before_file = work_.path() + "/before.checkpoint";
  const tellonce::v1::Checkpoint before = SaveCheckpoint(before_file, "portal");

  std::mutex mu;
  std::set<std::string> acknowledged;
  std::atomic<bool> stop{false};
  std::atomic<int> failures_after_kill{0};
  std::vector<std::thread> threads;
  const std::string address = broker_->address();
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string consumer = t % 2 == 0 ? "tax" : "benefits";
      auto stub = tellonce::v1::ExchangeService::NewStub(AgencyChannel(*pki_, consumer, address));
      for (int i = 0; !stop.load(); ++i) {
        tellonce::v1::GetAttributesRequest r;
        r.set_request_id(absl::StrCat("crash-", t, "-", i));
        r.set_citizen_id(kCitizen);
        if (consumer == "tax") {
          r.add_attributes(i % 3 == 0 ? "bank.account_iban" : "person.name");
          r.set_purpose(i % 2 == 0 ? "TAX_DEDUCTION_CHECK" : "TAX_ASSESSMENT");
        } else {
          r.add_attributes("person.address");
          r.set_purpose("TAX_ASSESSMENT");
        }
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
        GetAttributesResponse response;
        if (stub->GetAttributes(&context, r, &response).ok()) {
          std::lock_guard<std::mutex> lock(mu);
          acknowledged.insert(response.exchange_id());
        } else if (++failures_after_kill > 1000) {
          absl::SleepFor(absl::Milliseconds(10));
        }
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(1500));
  broker_->Kill9();
  absl::SleepFor(absl::Milliseconds(300));
  stop = true;
  for (std::thread& t : threads) t.join();
  ASSERT_GT(acknowledged.size(), 10u) << "too little traffic before the kill";

  ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
  std::vector<LoggedAccessEvent> events;
  grpc::Status status = ListAll("portal", kCitizen, &events);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::set<std::string> logged;
  for (const LoggedAccessEvent& e : events) logged.insert(e.event().exchange_id());
  int missing = 0;
  for (const std::string& x : acknowledged) {
    if (logged.count(x) == 0 && ++missing <= 5)
      ADD_FAILURE() << "acknowledged but not logged: " << x;
  }
  EXPECT_EQ(missing, 0) << "of " << acknowledged.size() << " acknowledged exchanges";

  // A fresh checkpoint after the restart extends the one taken before the crash.
  const std::string after_file = work_.path() + "/after.checkpoint";
  const tellonce::v1::Checkpoint after = SaveCheckpoint(after_file, "portal");
  EXPECT_GE(after.tree_size(), before.tree_size() + acknowledged.size());
  std::string out;
  ASSERT_EQ(Cli("tax",
                {"audit", "prove", "--old", before_file, "--new", after_file, "--broker-cert",
                 pki_->broker_cert(), "--signing-keys", pki_->signing_keys()},
                &out),
            0)
      << out;
  EXPECT_TRUE(absl::StartsWith(out, "OK: ")) << out;

  // And the whole log verifies offline.
  EXPECT_EQ(broker_->Terminate(), 0) << broker_->log();
  ASSERT_EQ(
      OfflineCli({"audit", "verify", "--data-dir", broker_->data_dir(), "--checkpoint", after_file},
                 &out),
      0)
      << out;
  EXPECT_TRUE(absl::StartsWith(out, absl::StrCat("OK: ", after.tree_size(), " events verified")))
      << out;
}

}  // namespace
}  // namespace tellonce::testing
