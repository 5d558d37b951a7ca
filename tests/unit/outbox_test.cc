// The outbox against a real subscriber connector (ConnectorServer over mutual TLS on
// 127.0.0.1) and a real RocksDB: a backlog far larger than the memory window is all
// delivered, in order per citizen, while at most memory_window deliveries are held in
// memory, and the counts stay right throughout.

#include "broker/outbox.h"

#include <cstdlib>
#include <future>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "connectors/sdk.h"
#include "storage/rocksdb/rocks_storage.h"
#include "storage/rocksdb/testing.h"
#include "consent/directory.h"
#include "gtest/gtest.h"
#include "proto/time.h"
#include "tests/testing/loopback_connector.h"
#include "tests/testing/sample_directory.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::broker {
namespace {

using ::tellonce::testing::TempDir;

std::string SourceDir() {
  const char* src = std::getenv("TELLONCE_SOURCE_DIR");
  return src != nullptr ? src : ".";
}

// Records the event ids it is given per citizen; a little slow, so a backlog builds.
class RecordingHandler final : public connectors::ChangeHandler {
 public:
  absl::Status OnChange(const connectors::ChangeContext& ctx) override {
    absl::SleepFor(absl::Microseconds(200));
    absl::MutexLock lock(&mu_);
    seen_[ctx.citizen_id].push_back(ctx.event_id);
    ++count_;
    return absl::OkStatus();
  }
  int count() {
    absl::MutexLock lock(&mu_);
    return count_;
  }
  std::map<std::string, std::vector<std::string>> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::vector<std::string>> seen_ ABSL_GUARDED_BY(mu_);
  int count_ ABSL_GUARDED_BY(mu_) = 0;
};

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = dir_.path() + "/pki";
    ASSERT_EQ(std::system(absl::StrCat(SourceDir(), "/certs/make-dev-pki --out ", pki_,
                                       " --directory ", SourceDir(),
                                       "/deploy/local/directory.textproto > /dev/null 2>&1")
                              .c_str()),
              0);
    absl::StatusOr<std::unique_ptr<connectors::ConnectorServer>> server =
        connectors::ConnectorServer::Start(testing::LoopbackConnectorOptions(pki_, "tax"),
                                           /*source=*/nullptr, &handler_);
    ASSERT_TRUE(server.ok()) << server.status();
    tax_ = *std::move(server);
    absl::StatusOr<std::shared_ptr<const consent::Directory>> directory =
        testing::LoadSampleDirectory(SourceDir() + "/deploy/local/directory.textproto", pki_);
    ASSERT_TRUE(directory.ok()) << directory.status();
    tellonce::v1::Directory proto = (*directory)->proto();
    for (auto& agency : *proto.mutable_agencies()) {
      if (agency.id() == "tax") {
        agency.set_connector_endpoint(absl::StrCat("127.0.0.1:", tax_->port()));
      }
    }
    absl::StatusOr<std::shared_ptr<const consent::Directory>> patched =
        consent::Directory::FromProto(proto);
    ASSERT_TRUE(patched.ok()) << patched.status();
    holder_ = std::make_unique<consent::DirectoryHolder>(*patched);
    absl::StatusOr<std::unique_ptr<storage::Storage>> opened =
        storage::OpenRocksStorage({.path = dir_.path() + "/db"});
    ASSERT_TRUE(opened.ok()) << opened.status();
    storage_ = *std::move(opened);
    db_ = storage::rocks::DatabaseOf(*storage_);
    pool_ = std::make_unique<ConnectorPool>(
        ConnectorPool::Options{.tls = testing::BrokerTls(pki_)});
  }
  void TearDown() override {
    outbox_.reset();
    storage_->Close();
  }

  void StartOutbox(absl::Duration dead_retention = absl::Hours(24 * 30)) {
    absl::StatusOr<std::unique_ptr<Outbox>> outbox =
        Outbox::Start(&storage_->deliveries(), holder_.get(), pool_.get(),
                      {.window = 4, .memory_window = kMemoryWindow,
                       .initial_backoff = absl::Milliseconds(10),
                       .max_backoff = absl::Milliseconds(50),
                       .dead_retention = dead_retention});
    ASSERT_TRUE(outbox.ok()) << outbox.status();
    outbox_ = *std::move(outbox);
  }

  // Stores `n` deliveries to tax, citizen i % kCitizens, event ids "e<i>", durably;
  // hands them to the outbox when `enqueue`.
  void Publish(int n, bool enqueue) {
    for (int start = 0; start < n; start += 100) {
      auto staged = std::make_shared<std::vector<tellonce::v1::Delivery>>();
      std::promise<absl::Status> done;
      storage_->Submit(
          [&, start, staged](storage::Transaction& tx) -> absl::Status {
            staged->clear();
            for (int i = start; i < std::min(n, start + 100); ++i) {
              tellonce::v1::ChangeEvent event;
              event.set_event_id(absl::StrCat("e", published_ + i));
              event.set_provider("registry");
              event.set_citizen_id(Citizen((published_ + i) % kCitizens));
              event.set_event_type("ADDRESS_CHANGED");
              event.add_attributes("person.address");
              tellonce::v1::Basis basis;
              basis.set_mandate_id("m");
              absl::StatusOr<std::vector<tellonce::v1::Delivery>> d =
                  tx.AddDeliveries(Outbox::NewDeliveries(event, {{"tax", basis}}, absl::Now()));
              if (!d.ok()) return d.status();
              for (auto& one : *d) staged->push_back(std::move(one));
            }
            return absl::OkStatus();
          },
          [&](absl::Status s) { done.set_value(s); });
      ASSERT_TRUE(done.get_future().get().ok());
      if (enqueue) outbox_->Enqueue(std::move(*staged));
    }
    published_ += n;
  }

  static std::string Citizen(int i) { return absl::StrCat("3760503029", i); }

  // Waits until the handler has seen `n` events, checking the memory bound meanwhile.
  void AwaitDelivered(int n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (handler_.count() < n && absl::Now() < deadline) {
      EXPECT_LE(outbox_->in_memory(), static_cast<size_t>(kMemoryWindow));
      max_in_memory_ = std::max(max_in_memory_, outbox_->in_memory());
      absl::SleepFor(absl::Milliseconds(2));
    }
    ASSERT_GE(handler_.count(), n);
  }

  // Each citizen's events arrived in publication order (duplicates allowed).
  void ExpectInOrderPerCitizen() {
    for (const auto& [citizen, ids] : handler_.seen()) {
      int last = -1;
      for (const std::string& id : ids) {
        int number = 0;
        ASSERT_TRUE(absl::SimpleAtoi(id.substr(1), &number));
        EXPECT_GE(number, last) << citizen << " got " << id << " after e" << last;
        last = std::max(last, number);
      }
    }
  }

  static constexpr int kMemoryWindow = 16;
  static constexpr int kCitizens = 5;
  TempDir dir_;
  std::string pki_;
  RecordingHandler handler_;
  std::unique_ptr<connectors::ConnectorServer> tax_;
  std::unique_ptr<consent::DirectoryHolder> holder_;
  std::unique_ptr<storage::Storage> storage_;
  storage::rocks::Database* db_ = nullptr;
  std::unique_ptr<ConnectorPool> pool_;
  std::unique_ptr<Outbox> outbox_;
  int published_ = 0;
  size_t max_in_memory_ = 0;
};

// Found by tests/fuzz/page_token_fuzz.cc (corpus seed-deliveries-max-token): the token
// 2^64-1 decoded, and listing from "token + 1" wrapped to delivery 0.
TEST_F(OutboxTest, LargestPageTokenIsMalformedNotAWrapToTheFirstPage) {
  StartOutbox();
  Publish(3, /*enqueue=*/false);
  absl::StatusOr<tellonce::v1::ListDeliveriesResponse> page =
      outbox_->List("", tellonce::v1::Delivery::STATE_UNSPECIFIED, 2, "18446744073709551615");
  EXPECT_TRUE(absl::IsInvalidArgument(page.status())) << page.status();
  absl::StatusOr<tellonce::v1::ListDeliveriesResponse> last =
      outbox_->List("", tellonce::v1::Delivery::STATE_UNSPECIFIED, 2, "18446744073709551614");
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->deliveries_size(), 0);
}

TEST_F(OutboxTest, BacklogFarBeyondTheMemoryWindowIsAllDeliveredInOrderPerCitizen) {
  StartOutbox();
  constexpr int kEvents = 1000;
  Publish(kEvents, /*enqueue=*/true);
  EXPECT_LE(outbox_->in_memory(), static_cast<size_t>(kMemoryWindow));
  AwaitDelivered(kEvents);
  EXPECT_LE(max_in_memory_, static_cast<size_t>(kMemoryWindow));
  ExpectInOrderPerCitizen();
  std::map<std::string, std::vector<std::string>> seen = handler_.seen();
  std::set<std::string> distinct;
  for (const auto& [citizen, ids] : seen) distinct.insert(ids.begin(), ids.end());
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kEvents));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (outbox_->pending() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(outbox_->pending(), 0u);
  EXPECT_EQ(outbox_->in_memory(), 0u);
  EXPECT_EQ(outbox_->List("", tellonce::v1::Delivery::STATE_UNSPECIFIED, 0, "")
                ->deliveries_size(),
            0);
}

TEST_F(OutboxTest, BacklogStoredBeforeStartIsCountedNotLoadedAndThenDelivered) {
  // Stored while no outbox ran (as after a restart with a backlog).
  Publish(500, /*enqueue=*/false);
  StartOutbox();
  EXPECT_LE(outbox_->in_memory(), static_cast<size_t>(kMemoryWindow));
  std::vector<Outbox::Depth> depths = outbox_->Depths();
  ASSERT_EQ(depths.size(), 1u);
  EXPECT_EQ(depths[0].subscriber, "tax");
  EXPECT_GT(depths[0].pending, static_cast<size_t>(kMemoryWindow));
  // More arrive while the stored ones drain.
  Publish(200, /*enqueue=*/true);
  AwaitDelivered(700);
  ExpectInOrderPerCitizen();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (outbox_->pending() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(outbox_->pending(), 0u);
}

TEST_F(OutboxTest, DeadDeliveriesPastTheirRetentionAreDroppedAndTheRestKept) {
  // Three stored deliveries before start: one DEAD published 10 days ago, one DEAD
  // published now, one PENDING published 10 days ago (owed: never dropped).
  Publish(3, /*enqueue=*/false);
  const absl::Time old = absl::Now() - absl::Hours(24 * 10);
  std::vector<tellonce::v1::Delivery> stored;
  ASSERT_TRUE(storage_->deliveries()
                  .Scan(0, [&](tellonce::v1::Delivery& d) {
                    stored.push_back(d);
                    return true;
                  })
                  .ok());
  ASSERT_EQ(stored.size(), 3u);
  stored[0].set_state(tellonce::v1::Delivery::DEAD);
  *stored[0].mutable_created_at() = ToProtoTime(old);
  stored[1].set_state(tellonce::v1::Delivery::DEAD);
  *stored[2].mutable_created_at() = ToProtoTime(old);
  for (const auto& d : stored) ASSERT_TRUE(storage_->deliveries().Update(d).ok());

  StartOutbox(/*dead_retention=*/absl::Hours(24 * 7));
  const uint64_t old_dead = std::stoull(stored[0].delivery_id());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (storage_->deliveries().Get(old_dead).ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(storage_->deliveries().Get(old_dead).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<tellonce::v1::Delivery> recent =
      storage_->deliveries().Get(std::stoull(stored[1].delivery_id()));
  ASSERT_TRUE(recent.ok()) << recent.status();
  EXPECT_EQ(recent->state(), tellonce::v1::Delivery::DEAD);
  EXPECT_EQ(outbox_->dead(), 1u);
  // The old PENDING one is delivered, not dropped.
  AwaitDelivered(1);
}

}  // namespace
}  // namespace tellonce::broker
