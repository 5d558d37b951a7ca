// Tests of the connector SDK's side of change notifications ("tell us once"):
// ValidateChangeRequest, SeenEvents (the record of handled events, in memory and in a
// file), a real ConnectorServer with a ChangeHandler over mutual TLS with certificates
// made by certs/make-dev-pki, and the pieces the example registry's `move` command is
// built from (LiveRecordsFileSource, RecordMove).

#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certs/tls.h"
#include "connectors/atomic_file.h"
#include "connectors/config.h"
#include "connectors/examples/change_of_address.h"
#include "connectors/records_source.h"
#include "connectors/sdk.h"
#include "connectors/seen_events.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "proto/textproto.h"
#include "tellonce/v1/agency_records.pb.h"
#include "tellonce/v1/connector.grpc.pb.h"
#include "tests/testing/loopback_connector.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::connectors {
namespace {

namespace fs = std::filesystem;
using google::protobuf::util::TimeUtil;
using ::tellonce::testing::TempDir;
using ::tellonce::v1::DeliverChangeRequest;
using ::tellonce::v1::DeliverChangeResponse;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kCitizen[] = "37605030299";

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> lines = absl::StrSplit(ReadAll(path), '\n', absl::SkipEmpty());
  return lines;
}

// ---------------------------------------------------------------------------
// ValidateChangeRequest

DeliverChangeRequest GoodChange(const std::string& event_id = "e-1") {
  DeliverChangeRequest r;
  r.set_event_id(event_id);
  r.set_provider("registry");
  r.set_citizen_id(kCitizen);
  r.set_event_type("ADDRESS_CHANGED");
  r.add_attributes("person.address");
  *r.mutable_occurred_at() = TimeUtil::SecondsToTimestamp(1'700'000'000);
  *r.mutable_published_at() = TimeUtil::SecondsToTimestamp(1'700'000'100);
  r.set_delivery_id("17");
  r.mutable_basis()->set_consent_id("c-1");
  return r;
}

void ExpectChangeRefused(const DeliverChangeRequest& r, const std::string& field) {
  absl::Status s = ValidateChangeRequest(r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field << ": " << s;
  EXPECT_THAT(std::string(s.message()), StartsWith(field + ": "));
  if (!r.citizen_id().empty()) {
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr(r.citizen_id())));
  }
}

TEST(ValidateChangeRequestTest, AcceptsAGoodRequestAndOneWithoutTimes) {
  EXPECT_TRUE(ValidateChangeRequest(GoodChange()).ok()) << ValidateChangeRequest(GoodChange());
  DeliverChangeRequest r = GoodChange();
  r.clear_occurred_at();
  r.clear_published_at();
  r.clear_basis();
  r.clear_delivery_id();
  EXPECT_TRUE(ValidateChangeRequest(r).ok()) << ValidateChangeRequest(r);
}

TEST(ValidateChangeRequestTest, RefusesEachMalformedFieldNamingIt) {
  struct Case {
    std::string field;
    std::function<void(DeliverChangeRequest&)> spoil;
  };
  const std::vector<Case> cases = {
      {"event_id", [](auto& r) { r.clear_event_id(); }},
      {"event_id", [](auto& r) { r.set_event_id(std::string(kMaxStringBytes + 1, 'e')); }},
      {"event_id", [](auto& r) { r.set_event_id("e\n1"); }},
      {"event_id", [](auto& r) { r.set_event_id("\xC3\xA4"); }},
      {"provider", [](auto& r) { r.clear_provider(); }},
      {"provider", [](auto& r) { r.set_provider("Registry Office"); }},
      {"citizen_id", [](auto& r) { r.clear_citizen_id(); }},
      {"citizen_id", [](auto& r) { r.set_citizen_id("3760\t5030299"); }},
      {"event_type", [](auto& r) { r.clear_event_type(); }},
      {"event_type", [](auto& r) { r.set_event_type("address_changed"); }},
      {"attributes", [](auto& r) { r.clear_attributes(); }},
      {"attributes[1]", [](auto& r) { r.add_attributes("person.address"); }},
      {"attributes[0]", [](auto& r) { r.set_attributes(0, "Person Address"); }},
      {"occurred_at", [](auto& r) { r.mutable_occurred_at()->set_nanos(-1); }},
      {"published_at", [](auto& r) { r.mutable_published_at()->set_seconds(1LL << 40); }},
      {"delivery_id", [](auto& r) { r.set_delivery_id("1\x01"); }},
      {"basis.consent_id", [](auto& r) { r.mutable_basis()->set_consent_id("c\n"); }},
  };
  for (const Case& c : cases) {
    DeliverChangeRequest r = GoodChange();
    c.spoil(r);
    ExpectChangeRefused(r, c.field);
  }
}

// ---------------------------------------------------------------------------
// SeenEvents

TEST(SeenEventsTest, AnEventIsNewUntilHandledThenSeenAndBusyWhileHandled) {
  absl::StatusOr<std::unique_ptr<SeenEvents>> seen = SeenEvents::Open("", 10);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(*(*seen)->Begin("registry", "e1"), SeenEvents::Claim::kNew);
  EXPECT_EQ(*(*seen)->Begin("registry", "e1"), SeenEvents::Claim::kInProgress);
  // Another provider's event with the same id is another event.
  EXPECT_EQ(*(*seen)->Begin("bank", "e1"), SeenEvents::Claim::kNew);
  // A failed handler releases the claim: the retry is new again.
  ASSERT_TRUE((*seen)->Finish("registry", "e1", /*handled=*/false).ok());
  EXPECT_EQ(*(*seen)->Begin("registry", "e1"), SeenEvents::Claim::kNew);
  ASSERT_TRUE((*seen)->Finish("registry", "e1", /*handled=*/true).ok());
  EXPECT_EQ(*(*seen)->Begin("registry", "e1"), SeenEvents::Claim::kSeen);
  EXPECT_TRUE((*seen)->Contains("registry", "e1"));
  EXPECT_FALSE((*seen)->Contains("bank", "e1"));
  EXPECT_EQ((*seen)->size(), 1u);
}

TEST(SeenEventsTest, KeepsOnlyTheNewestCapacityEvents) {
  absl::StatusOr<std::unique_ptr<SeenEvents>> seen = SeenEvents::Open("", 3);
  ASSERT_TRUE(seen.ok());
  for (int i = 0; i < 5; ++i) {
    const std::string id = absl::StrCat("e", i);
    ASSERT_EQ(*(*seen)->Begin("registry", id), SeenEvents::Claim::kNew);
    ASSERT_TRUE((*seen)->Finish("registry", id, true).ok());
  }
  EXPECT_EQ((*seen)->size(), 3u);
  EXPECT_FALSE((*seen)->Contains("registry", "e1"));
  EXPECT_TRUE((*seen)->Contains("registry", "e2"));
  EXPECT_TRUE((*seen)->Contains("registry", "e4"));
}

TEST(SeenEventsTest, RefusesACapacityOfZeroAndKeysThatWouldBreakTheFile) {
  EXPECT_TRUE(absl::IsInvalidArgument(SeenEvents::Open("", 0).status()));
  absl::StatusOr<std::unique_ptr<SeenEvents>> seen = SeenEvents::Open("", 3);
  ASSERT_TRUE(seen.ok());
  EXPECT_TRUE(absl::IsInvalidArgument((*seen)->Begin("a b", "e").status()));
  EXPECT_TRUE(absl::IsInvalidArgument((*seen)->Begin("a", "e\n").status()));
}

TEST(SeenEventsTest, TheFileKeepsHandledEventsAcrossReopen) {
  TempDir dir;
  const std::string path = dir.path() + "/seen.txt";
  {
    absl::StatusOr<std::unique_ptr<SeenEvents>> seen = SeenEvents::Open(path, 100);
    ASSERT_TRUE(seen.ok()) << seen.status();
    for (const std::string id : {"a 1", "b", "c"}) {
      ASSERT_EQ(*(*seen)->Begin("registry", id), SeenEvents::Claim::kNew);
    }
    ASSERT_TRUE((*seen)->Finish("registry", "a 1", true).ok());
    ASSERT_TRUE((*seen)->Finish("registry", "b", true).ok());
    ASSERT_TRUE((*seen)->Finish("registry", "c", false).ok());  // failed: not recorded
  }
  EXPECT_EQ(Lines(path), (std::vector<std::string>{"registry a 1", "registry b"}));
  absl::StatusOr<std::unique_ptr<SeenEvents>> reopened = SeenEvents::Open(path, 100);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(*(*reopened)->Begin("registry", "a 1"), SeenEvents::Claim::kSeen);
  EXPECT_EQ(*(*reopened)->Begin("registry", "b"), SeenEvents::Claim::kSeen);
  EXPECT_EQ(*(*reopened)->Begin("registry", "c"), SeenEvents::Claim::kNew);
}

TEST(SeenEventsTest, OpeningDropsATornLastLineAndKeepsTheNewestCapacity) {
  TempDir dir;
  const std::string path = dir.path() + "/seen.txt";
  std::string text;
  for (int i = 0; i < 10; ++i) absl::StrAppend(&text, "registry e", i, "\n");
  text += "garbage-without-space\nregistry torn";  // no line break: torn by a crash
  WriteFile(path, text);
  absl::StatusOr<std::unique_ptr<SeenEvents>> seen = SeenEvents::Open(path, 4);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ((*seen)->size(), 4u);
  EXPECT_FALSE((*seen)->Contains("registry", "e5"));
  EXPECT_TRUE((*seen)->Contains("registry", "e6"));
  EXPECT_TRUE((*seen)->Contains("registry", "e9"));
  EXPECT_FALSE((*seen)->Contains("registry", "torn"));
  // Rewritten compacted, and appended to from there.
  EXPECT_EQ(Lines(path).size(), 4u);
  ASSERT_EQ(*(*seen)->Begin("registry", "e10"), SeenEvents::Claim::kNew);
  ASSERT_TRUE((*seen)->Finish("registry", "e10", true).ok());
  EXPECT_EQ(Lines(path).back(), "registry e10");
}

TEST(SeenEventsTest, TheFileStaysBoundedWhileAppending) {
  TempDir dir;
  const std::string path = dir.path() + "/seen.txt";
  absl::StatusOr<std::unique_ptr<SeenEvents>> seen = SeenEvents::Open(path, 5);
  ASSERT_TRUE(seen.ok()) << seen.status();
  for (int i = 0; i < 100; ++i) {
    const std::string id = absl::StrCat("e", i);
    ASSERT_EQ(*(*seen)->Begin("registry", id), SeenEvents::Claim::kNew);
    ASSERT_TRUE((*seen)->Finish("registry", id, true).ok());
    ASSERT_LE(Lines(path).size(), 10u) << "after " << i;
  }
  absl::StatusOr<std::unique_ptr<SeenEvents>> reopened = SeenEvents::Open(path, 5);
  ASSERT_TRUE(reopened.ok());
  EXPECT_TRUE((*reopened)->Contains("registry", "e99"));
  EXPECT_TRUE((*reopened)->Contains("registry", "e95"));
  EXPECT_FALSE((*reopened)->Contains("registry", "e94"));
}

TEST(SeenEventsTest, AFileInAMissingFolderFailsToOpenNamingTheField) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<SeenEvents>> seen =
      SeenEvents::Open(dir.path() + "/no/such/folder/seen.txt", 5);
  ASSERT_FALSE(seen.ok());
  EXPECT_THAT(std::string(seen.status().message()), StartsWith("seen_events_file: "));
}

// ---------------------------------------------------------------------------
// ConnectorServer with a ChangeHandler, over real mutual TLS

fs::path MakeDevPkiScript() {
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

// A handler that records what it was given and answers as told. Thread-safe.
class RecordingHandler final : public ChangeHandler {
 public:
  absl::Status OnChange(const ChangeContext& ctx) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back(ctx);
    ++entered_;
    mu_.Await(absl::Condition(
        +[](bool* blocked) { return !*blocked; }, &blocked_));
    return answer_;
  }
  void Answer(absl::Status status) {
    absl::MutexLock lock(&mu_);
    answer_ = std::move(status);
  }
  void Block(bool blocked) {
    absl::MutexLock lock(&mu_);
    blocked_ = blocked;
  }
  std::vector<ChangeContext> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  int entered() {
    absl::MutexLock lock(&mu_);
    return entered_;
  }

 private:
  absl::Mutex mu_;
  std::vector<ChangeContext> calls_ ABSL_GUARDED_BY(mu_);
  absl::Status answer_ ABSL_GUARDED_BY(mu_);
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
};

class NothingSource final : public AttributeSource {
 public:
  absl::StatusOr<tellonce::v1::FetchAttributesResponse> Fetch(const FetchContext&) override {
    return tellonce::v1::FetchAttributesResponse();
  }
};

bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 1000 && !done(); ++i) absl::SleepFor(absl::Milliseconds(10));
  return done();
}

class ChangeServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string log = dir_->path() + "/make-dev-pki.log";
    const std::string command = absl::StrCat(
        "bash '", MakeDevPkiScript().string(), "' --out '", dir_->path(),
        "/pki' --trust-domain tellonce.local --agency tax --agency bank >'", log, "' 2>&1");
    const int rc = std::system(command.c_str());
    ASSERT_TRUE(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << "make-dev-pki failed:\n"
                                                                   << ReadAll(log);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(dir_, nullptr); }

  static std::string Pki(const std::string& file) { return dir_->path() + "/pki/" + file; }

  static ConnectorOptions TaxOptions() {
    return ::tellonce::testing::LoopbackConnectorOptions(dir_->path() + "/pki", "tax", Pki("crl"));
  }

  static std::shared_ptr<grpc::Channel> ChannelAs(const std::string& cert, const std::string& key,
                                                  int port) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = certs::MakeChannelCredentials(
        {.ca_file = Pki("ca.pem"), .cert_file = Pki(cert), .key_file = Pki(key), .crl_dir = ""},
        "spiffe://tellonce.local/agency/tax");
    EXPECT_TRUE(creds.ok()) << creds.status();
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), *creds, args);
  }

  static grpc::Status Deliver(const std::shared_ptr<grpc::Channel>& channel,
                              const DeliverChangeRequest& request) {
    auto stub = tellonce::v1::ConnectorService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    DeliverChangeResponse response;
    return stub->DeliverChange(&context, request, &response);
  }
  static grpc::Status Deliver(int port, const DeliverChangeRequest& request) {
    return Deliver(ChannelAs("broker.pem", "broker.key", port), request);
  }

  static TempDir* dir_;
};

TempDir* ChangeServerTest::dir_ = nullptr;

TEST_F(ChangeServerTest, DeliverChangeHandsTheHandlerTheEventAsAContext) {
  RecordingHandler handler;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(TaxOptions(), nullptr, &handler);
  ASSERT_TRUE(server.ok()) << server.status();
  grpc::Status status = Deliver((*server)->port(), GoodChange());
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<ChangeContext> calls = handler.calls();
  ASSERT_EQ(calls.size(), 1u);
  const ChangeContext& ctx = calls[0];
  EXPECT_EQ(ctx.event_id, "e-1");
  EXPECT_EQ(ctx.provider, "registry");
  EXPECT_EQ(ctx.citizen_id, kCitizen);
  EXPECT_EQ(ctx.event_type, "ADDRESS_CHANGED");
  EXPECT_EQ(ctx.attributes, std::vector<std::string>{"person.address"});
  EXPECT_EQ(ctx.occurred_at, absl::FromUnixSeconds(1'700'000'000));
  EXPECT_EQ(ctx.published_at, absl::FromUnixSeconds(1'700'000'100));
  EXPECT_EQ(ctx.delivery_id, "17");
  EXPECT_EQ(ctx.basis.consent_id(), "c-1");
  EXPECT_LT(ctx.deadline, absl::Now() + absl::Seconds(11));
}

TEST_F(ChangeServerTest, ADuplicateIsAcknowledgedWithoutCallingTheHandlerAgain) {
  RecordingHandler handler;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(TaxOptions(), nullptr, &handler);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = ChannelAs("broker.pem", "broker.key", (*server)->port());
  for (int i = 0; i < 3; ++i) {
    DeliverChangeRequest again = GoodChange("dup");
    again.set_delivery_id(absl::StrCat(i));  // even under another delivery id
    ASSERT_TRUE(Deliver(channel, again).ok());
  }
  EXPECT_EQ(handler.calls().size(), 1u);
  // The same event id from another provider is another event.
  DeliverChangeRequest other = GoodChange("dup");
  other.set_provider("bank");
  ASSERT_TRUE(Deliver(channel, other).ok());
  EXPECT_EQ(handler.calls().size(), 2u);
}

TEST_F(ChangeServerTest, AHandlerErrorReachesTheBrokerAndItsRetryCallsTheHandlerAgain) {
  RecordingHandler handler;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(TaxOptions(), nullptr, &handler);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = ChannelAs("broker.pem", "broker.key", (*server)->port());
  handler.Answer(absl::UnavailableError("tax database down"));
  grpc::Status status = Deliver(channel, GoodChange("retry"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "tax database down");
  handler.Answer(absl::OkStatus());
  EXPECT_TRUE(Deliver(channel, GoodChange("retry")).ok());
  EXPECT_TRUE(Deliver(channel, GoodChange("retry")).ok());
  EXPECT_EQ(handler.calls().size(), 2u);
}

TEST_F(ChangeServerTest, ACopyArrivingWhileTheHandlerRunsIsAbortedNotHandledTwice) {
  RecordingHandler handler;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(TaxOptions(), nullptr, &handler);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = ChannelAs("broker.pem", "broker.key", (*server)->port());
  handler.Block(true);
  grpc::Status first;
  std::thread slow([&] { first = Deliver(channel, GoodChange("slow")); });
  ASSERT_TRUE(WaitFor([&] { return handler.entered() == 1; }));
  grpc::Status copy = Deliver(channel, GoodChange("slow"));
  EXPECT_EQ(copy.error_code(), grpc::StatusCode::ABORTED) << copy.error_message();
  handler.Block(false);
  slow.join();
  EXPECT_TRUE(first.ok()) << first.error_message();
  EXPECT_TRUE(Deliver(channel, GoodChange("slow")).ok());
  EXPECT_EQ(handler.calls().size(), 1u);
}

TEST_F(ChangeServerTest, WithASeenEventsFileADuplicateIsDroppedAfterARestart) {
  TempDir state;
  ConnectorOptions options = TaxOptions();
  options.seen_events_file = state.path() + "/seen.txt";
  RecordingHandler handler;
  {
    absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
        ConnectorServer::Start(options, nullptr, &handler);
    ASSERT_TRUE(server.ok()) << server.status();
    ASSERT_TRUE(Deliver((*server)->port(), GoodChange("before-restart")).ok());
  }
  absl::StatusOr<std::unique_ptr<ConnectorServer>> restarted =
      ConnectorServer::Start(options, nullptr, &handler);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  ASSERT_TRUE(Deliver((*restarted)->port(), GoodChange("before-restart")).ok());
  ASSERT_TRUE(Deliver((*restarted)->port(), GoodChange("after-restart")).ok());
  std::vector<ChangeContext> calls = handler.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].event_id, "before-restart");
  EXPECT_EQ(calls[1].event_id, "after-restart");
}

TEST_F(ChangeServerTest, WithoutAFileTheHandledEventsAreForgottenAtRestart) {
  RecordingHandler handler;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
        ConnectorServer::Start(TaxOptions(), nullptr, &handler);
    ASSERT_TRUE(server.ok()) << server.status();
    ASSERT_TRUE(Deliver((*server)->port(), GoodChange("memory")).ok());
  }
  EXPECT_EQ(handler.calls().size(), 2u);
}

TEST_F(ChangeServerTest, RefusesAnAgencyCertificateAndMalformedRequestsBeforeTheHandler) {
  RecordingHandler handler;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(TaxOptions(), nullptr, &handler);
  ASSERT_TRUE(server.ok()) << server.status();
  grpc::Status as_bank =
      Deliver(ChannelAs("agencies/bank.pem", "agencies/bank.key", (*server)->port()), GoodChange());
  EXPECT_EQ(as_bank.error_code(), grpc::StatusCode::PERMISSION_DENIED) << as_bank.error_message();
  DeliverChangeRequest bad = GoodChange();
  bad.set_event_type("moved");
  grpc::Status malformed = Deliver((*server)->port(), bad);
  EXPECT_EQ(malformed.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(malformed.error_message(), StartsWith("event_type: "));
  EXPECT_TRUE(handler.calls().empty());
}

TEST_F(ChangeServerTest, WhatAConnectorDoesNotServeIsUnimplemented) {
  NothingSource source;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> provider =
      ConnectorServer::Start(TaxOptions(), &source);
  ASSERT_TRUE(provider.ok()) << provider.status();
  grpc::Status change = Deliver((*provider)->port(), GoodChange());
  EXPECT_EQ(change.error_code(), grpc::StatusCode::UNIMPLEMENTED) << change.error_message();
  // An agency's certificate is still refused first.
  grpc::Status as_bank = Deliver(
      ChannelAs("agencies/bank.pem", "agencies/bank.key", (*provider)->port()), GoodChange());
  EXPECT_EQ(as_bank.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  RecordingHandler handler;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> subscriber =
      ConnectorServer::Start(TaxOptions(), nullptr, &handler);
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  auto stub = tellonce::v1::ConnectorService::NewStub(
      ChannelAs("broker.pem", "broker.key", (*subscriber)->port()));
  grpc::ClientContext context;
  tellonce::v1::FetchAttributesRequest fetch;
  fetch.set_citizen_id(kCitizen);
  fetch.add_attributes("person.address");
  tellonce::v1::FetchAttributesResponse response;
  grpc::Status status = stub->FetchAttributes(&context, fetch, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << status.error_message();

  absl::StatusOr<std::unique_ptr<ConnectorServer>> neither =
      ConnectorServer::Start(TaxOptions(), nullptr, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(neither.status())) << neither.status();
}

TEST_F(ChangeServerTest, RefusesToStartWithAnUnusableSeenEventsFile) {
  RecordingHandler handler;
  ConnectorOptions options = TaxOptions();
  options.seen_events_file = dir_->path() + "/no/such/folder/seen.txt";
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(options, nullptr, &handler);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()), StartsWith("seen_events_file: "));
  options = TaxOptions();
  options.max_seen_events = 0;
  server = ConnectorServer::Start(options, nullptr, &handler);
  EXPECT_TRUE(absl::IsInvalidArgument(server.status()));
  EXPECT_THAT(std::string(server.status().message()), StartsWith("max_seen_events: "));
}

// ---------------------------------------------------------------------------
// LoadConnectorConfig: the fields for calling the broker and remembering events

TEST(ChangeConfigTest, ReadsBrokerAddressAndSeenEventsFileResolvedAgainstTheFolder) {
  TempDir dir;
  const std::string path = dir.path() + "/tax.textproto";
  const std::string base = R"(agency_id: "tax"
listen_address: "127.0.0.1:0"
trust_domain: "tellonce.local"
tls { ca_file: "ca.pem" cert_file: "tax.pem" key_file: "tax.key" }
)";
  WriteFile(path, base + "broker_address: \"127.0.0.1:7443\"\nseen_events_file: \"seen.txt\"\n" +
                      "max_seen_events: 7\n");
  absl::StatusOr<ConnectorOptions> options = LoadConnectorConfig(path);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->broker_address, "127.0.0.1:7443");
  EXPECT_EQ(options->seen_events_file, dir.path() + "/seen.txt");
  EXPECT_EQ(options->max_seen_events, 7u);

  WriteFile(path, base);
  options = LoadConnectorConfig(path);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->broker_address.empty());
  EXPECT_TRUE(options->seen_events_file.empty());
  EXPECT_EQ(options->max_seen_events, 100'000u);

  WriteFile(path, base + "broker_address: \"localhost\"\n");
  options = LoadConnectorConfig(path);
  ASSERT_FALSE(options.ok());
  EXPECT_THAT(std::string(options.status().message()), HasSubstr("broker_address: "));
}

TEST(ChangeConfigTest, TheShippedSubscriberAndPublisherNameTheBroker) {
  const char* src = std::getenv("TELLONCE_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "TELLONCE_SOURCE_DIR not set (run through ctest)";
  const fs::path dir = fs::path(src) / "deploy/local/connectors";
  for (const std::string agency : {"registry", "tax", "benefits"}) {
    absl::StatusOr<ConnectorOptions> options =
        LoadConnectorConfig((dir / (agency + ".textproto")).string());
    ASSERT_TRUE(options.ok()) << options.status();
    EXPECT_EQ(options->broker_address, "127.0.0.1:7443") << agency;
  }
}

// ---------------------------------------------------------------------------
// LiveRecordsFileSource and the registry's RecordMove

constexpr char kRegistryRecords[] = R"(# The registry's test records.
# Two lines of comments.

records {
  citizen_id: "37605030299"
  attributes { key: "person.name" value { string_value: "Jaan Tamm" } }
  attributes { key: "person.address" value { string_value: "Pärnu mnt 41-12, 10119 Tallinn" } }
  as_of { seconds: 1704067200 }
}
records {
  citizen_id: "49403136526"
  attributes { key: "person.address" value { string_value: "Rüütli tn 8-3, 51007 Tartu" } }
}
)";

std::vector<HeldAttribute> RegistryAttributes() {
  return {{"person.name", tellonce::v1::STRING}, {"person.address", tellonce::v1::STRING}};
}

std::string AddressServed(AttributeSource& source, const std::string& citizen) {
  FetchContext ctx;
  ctx.citizen_id = citizen;
  ctx.attributes = {"person.address"};
  absl::StatusOr<tellonce::v1::FetchAttributesResponse> r = source.Fetch(ctx);
  if (!r.ok() || r->attributes_size() != 1) return "(error)";
  return r->attributes(0).value().string_value();
}

TEST(LiveRecordsFileSourceTest, ServesTheReplacedFileFromTheNextFetchOn) {
  TempDir dir;
  const std::string path = dir.path() + "/registry.textproto";
  WriteFile(path, kRegistryRecords);
  std::vector<std::pair<absl::Status, size_t>> reloads;
  absl::StatusOr<std::unique_ptr<LiveRecordsFileSource>> source = LiveRecordsFileSource::Load(
      path, RegistryAttributes(),
      [&](const absl::Status& s, size_t n) { reloads.emplace_back(s, n); });
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ(AddressServed(**source, kCitizen), "Pärnu mnt 41-12, 10119 Tallinn");
  EXPECT_TRUE(reloads.empty());

  std::string moved = kRegistryRecords;
  moved.replace(moved.find("Pärnu mnt 41-12"), std::string("Pärnu mnt 41-12").size(),
                "Narva mnt 7-1");
  ASSERT_TRUE(WriteFileAtomically(path, moved).ok());
  EXPECT_EQ(AddressServed(**source, kCitizen), "Narva mnt 7-1, 10119 Tallinn");
  ASSERT_EQ(reloads.size(), 1u);
  EXPECT_TRUE(reloads[0].first.ok());
  EXPECT_EQ(reloads[0].second, 2u);

  // A replacement that does not load is reported once and the last good version kept.
  ASSERT_TRUE(WriteFileAtomically(path, "records { citizen_id: ").ok());
  EXPECT_EQ(AddressServed(**source, kCitizen), "Narva mnt 7-1, 10119 Tallinn");
  EXPECT_EQ(AddressServed(**source, kCitizen), "Narva mnt 7-1, 10119 Tallinn");
  ASSERT_EQ(reloads.size(), 2u);
  EXPECT_FALSE(reloads[1].first.ok());
  ASSERT_TRUE(WriteFileAtomically(path, kRegistryRecords).ok());
  EXPECT_EQ(AddressServed(**source, kCitizen), "Pärnu mnt 41-12, 10119 Tallinn");
  EXPECT_EQ(reloads.size(), 3u);
}

TEST(RecordMoveTest, ReplacesTheAddressKeepingTheCommentsAndAnotherFollowerSeesIt) {
  TempDir dir;
  const std::string path = dir.path() + "/registry.textproto";
  WriteFile(path, kRegistryRecords);
  absl::StatusOr<std::unique_ptr<LiveRecordsFileSource>> source =
      LiveRecordsFileSource::Load(path, RegistryAttributes());
  ASSERT_TRUE(source.ok()) << source.status();

  const absl::Time now = absl::FromUnixMicros(1'750'000'000'123'456);
  absl::StatusOr<examples::RecordedMove> moved =
      examples::RecordMove(path, kCitizen, "Tartu mnt 5-7, 10115 Tallinn", now);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_TRUE(moved->changed);
  EXPECT_EQ(moved->as_of, now);
  EXPECT_EQ(AddressServed(**source, kCitizen), "Tartu mnt 5-7, 10115 Tallinn");
  // Other records, the name, and the comment block are as they were; UTF-8 stays
  // readable.
  EXPECT_EQ(AddressServed(**source, "49403136526"), "Rüütli tn 8-3, 51007 Tartu");
  const std::string text = ReadAll(path);
  EXPECT_TRUE(absl::StartsWith(text, "# The registry's test records.\n# Two lines of comments.\n"))
      << text;
  EXPECT_THAT(text, HasSubstr("Rüütli"));
  EXPECT_THAT(text, HasSubstr("Jaan Tamm"));

  // The same move again changes nothing and reports the time it took effect.
  absl::StatusOr<examples::RecordedMove> again =
      examples::RecordMove(path, kCitizen, "Tartu mnt 5-7, 10115 Tallinn", now + absl::Hours(1));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(again->as_of, now);
  EXPECT_EQ(ReadAll(path), text);
}

TEST(RecordMoveTest, RefusesAnUnknownCitizenAndABadAddressLeavingTheFileAlone) {
  TempDir dir;
  const std::string path = dir.path() + "/registry.textproto";
  WriteFile(path, kRegistryRecords);
  absl::StatusOr<examples::RecordedMove> unknown =
      examples::RecordMove(path, "38001010000", "Somewhere 1", absl::Now());
  EXPECT_TRUE(absl::IsNotFound(unknown.status())) << unknown.status();
  EXPECT_THAT(std::string(unknown.status().message()), Not(HasSubstr("38001010000")));
  for (const std::string& bad : {std::string(""), std::string("Line 1\nLine 2"),
                                 std::string("\xC3"), std::string(2000, 'a')}) {
    absl::StatusOr<examples::RecordedMove> r =
        examples::RecordMove(path, kCitizen, bad, absl::Now());
    EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
    EXPECT_THAT(std::string(r.status().message()), StartsWith("address: "));
  }
  EXPECT_EQ(ReadAll(path), kRegistryRecords);
}

TEST(RecordMoveTest, TheDefaultEventIdIsStableAndDoesNotRevealTheCitizen) {
  const absl::Time t = absl::FromUnixSeconds(1'750'000'000);
  const std::string id = examples::DefaultMoveEventId(kCitizen, "Tartu mnt 5-7", t);
  EXPECT_EQ(id, examples::DefaultMoveEventId(kCitizen, "Tartu mnt 5-7", t));
  EXPECT_NE(id, examples::DefaultMoveEventId(kCitizen, "Tartu mnt 5-7", t + absl::Seconds(1)));
  EXPECT_NE(id, examples::DefaultMoveEventId(kCitizen, "Tartu mnt 5-8", t));
  EXPECT_THAT(id, StartsWith("address-"));
  EXPECT_EQ(id.size(), std::string("address-").size() + 20);
  EXPECT_THAT(id, Not(HasSubstr(kCitizen)));
}

}  // namespace
}  // namespace tellonce::connectors
