// The transparency log on a real RocksDB: the tree the background thread builds
// matches an independent computation over the stored event bytes, checkpoints are
// signed and consistent across restarts, proofs verify, listings filter.

#include "broker/transparency.h"

#include <future>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/rocksdb/rocks_storage.h"
#include "storage/rocksdb/testing.h"
#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "tests/testing/power_loss_fs.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_keys.h"

namespace tellonce::broker {
namespace {

using ::tellonce::testing::TempDir;
using tellonce::v1::SignedCheckpoint;

// An independent MTH (RFC 6962 2.1) straight from the definition, over leaf bytes.
certs::Hash ReferenceRoot(const std::vector<std::string>& leaves, size_t begin, size_t end) {
  if (end == begin) return certs::EmptyTreeHash();
  if (end - begin == 1) return certs::LeafHash(leaves[begin]);
  size_t k = 1;
  while (k * 2 < end - begin) k *= 2;
  return certs::NodeHash(ReferenceRoot(leaves, begin, begin + k),
                         ReferenceRoot(leaves, begin + k, end));
}

certs::Hash ToHash(const std::string& bytes) { return *certs::HashFromBytes(bytes); }

class TransparencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<certs::SigningKey> key = certs::SigningKey::FromPem(testing::NewP256KeyPem());
    ASSERT_TRUE(key.ok()) << key.status();
    key_ = std::make_unique<certs::SigningKey>(*key);
    absl::StatusOr<certs::VerifyingKey> verifying =
        certs::VerifyingKey::FromPublicKeyPem(key_->PublicKeyPem());
    ASSERT_TRUE(verifying.ok()) << verifying.status();
    verifying_ = std::make_unique<certs::VerifyingKey>(*verifying);
    Open();
  }
  void TearDown() override { Close(); }

  void Open() {
    absl::StatusOr<std::unique_ptr<storage::Storage>> opened =
        storage::OpenRocksStorage({.path = dir_.path() + "/db", .env = env_});
    ASSERT_TRUE(opened.ok()) << opened.status();
    storage_ = *std::move(opened);
    db_ = storage::rocks::DatabaseOf(*storage_);
    log_ = std::make_unique<AccessLog>(storage_.get());
    absl::StatusOr<std::unique_ptr<TransparencyLog>> t = TransparencyLog::Start(
        storage_.get(), log_.get(), *key_,
        {.issuer = "spiffe://test.local/broker",
         .checkpoint_interval = absl::Hours(1),
         .fresh_interval = fresh_interval_,
         .poll_interval = absl::Seconds(1),
         .on_signed = nullptr});
    ASSERT_TRUE(t.ok()) << t.status();
    tlog_ = *std::move(t);
    storage_->SetAppendListener([t = tlog_.get()] { t->Notify(); });
  }
  void Close() {
    if (storage_ == nullptr) return;
    storage_->Close();
    tlog_.reset();
    log_.reset();
    storage_.reset();
    db_ = nullptr;
  }

  // Appends `n` events for `citizen` caused by `consumer`; returns their stored bytes.
  void Append(int n, const std::string& citizen = "37605030299",
              const std::string& consumer = "tax") {
    std::vector<tellonce::v1::AccessEvent> events;
    for (int i = 0; i < n; ++i) {
      tellonce::v1::AccessEvent& e = events.emplace_back();
      e.set_exchange_id(absl::StrCat("x", appended_++));
      e.set_consumer(consumer);
      e.set_citizen_id(citizen);
      e.add_attributes("person.name");
      e.mutable_at()->set_seconds(1'900'000'000 + appended_);
    }
    std::promise<absl::Status> done;
    log_->Append(std::move(events), [&](absl::Status r) { done.set_value(r); });
    ASSERT_TRUE(done.get_future().get().ok());
  }

  std::vector<std::string> StoredLeaves() {
    std::vector<std::string> leaves;
    for (uint64_t i = 0; i < *log_->Size(); ++i) leaves.push_back(*log_->ReadBytes(i));
    return leaves;
  }

  tellonce::v1::Checkpoint Fresh() {
    std::promise<absl::StatusOr<SignedCheckpoint>> done;
    tlog_->FreshCheckpoint([&](absl::StatusOr<SignedCheckpoint> c) { done.set_value(c); });
    absl::StatusOr<SignedCheckpoint> c = done.get_future().get();
    EXPECT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(verifying_->Verify(certs::SignedKind::kCheckpoint, c->body(), c->signature()).ok()) << "bad signature";
    tellonce::v1::Checkpoint body;
    EXPECT_TRUE(body.ParseFromString(c->body()));
    return body;
  }

  TempDir dir_;
  // Most tests sign a fresh checkpoint after each append; the coalescing test sets it.
  absl::Duration fresh_interval_ = absl::ZeroDuration();
  // The database's environment; null: RocksDB's default.
  rocksdb::Env* env_ = nullptr;
  int appended_ = 0;
  std::unique_ptr<certs::SigningKey> key_;
  std::unique_ptr<certs::VerifyingKey> verifying_;
  std::unique_ptr<storage::Storage> storage_;
  storage::rocks::Database* db_ = nullptr;
  std::unique_ptr<AccessLog> log_;
  std::unique_ptr<TransparencyLog> tlog_;
};

TEST_F(TransparencyTest, FreshCheckpointCoversEveryAppendedEventWithTheReferenceRoot) {
  tellonce::v1::Checkpoint empty = Fresh();
  EXPECT_EQ(empty.tree_size(), 0u);
  EXPECT_EQ(ToHash(empty.root_hash()), certs::EmptyTreeHash());
  for (int n : {1, 2, 4, 10, 100}) {
    Append(n);
    tellonce::v1::Checkpoint c = Fresh();
    const std::vector<std::string> leaves = StoredLeaves();
    ASSERT_EQ(c.tree_size(), leaves.size());
    EXPECT_EQ(ToHash(c.root_hash()), ReferenceRoot(leaves, 0, leaves.size()));
    EXPECT_EQ(c.issuer(), "spiffe://test.local/broker");
  }
}

TEST_F(TransparencyTest, EveryInclusionProofAndConsistencyProofVerifies) {
  Append(37);
  tellonce::v1::Checkpoint old_checkpoint = Fresh();
  Append(20);
  tellonce::v1::Checkpoint now = Fresh();
  for (uint64_t i = 0; i < now.tree_size(); ++i) {
    absl::StatusOr<tellonce::v1::GetInclusionProofResponse> p =
        tlog_->InclusionProof(i, now.tree_size());
    ASSERT_TRUE(p.ok()) << p.status();
    std::vector<certs::Hash> path;
    for (const std::string& h : p->path()) path.push_back(ToHash(h));
    EXPECT_TRUE(certs::VerifyInclusion(i, now.tree_size(), certs::LeafHash(p->event_bytes()),
                                       path, ToHash(now.root_hash()))
                    .ok())
        << i;
  }
  absl::StatusOr<tellonce::v1::GetConsistencyProofResponse> c =
      tlog_->ConsistencyProof(old_checkpoint.tree_size(), now.tree_size());
  ASSERT_TRUE(c.ok()) << c.status();
  std::vector<certs::Hash> proof;
  for (const std::string& h : c->proof()) proof.push_back(ToHash(h));
  EXPECT_TRUE(certs::VerifyConsistency(old_checkpoint.tree_size(), now.tree_size(),
                                       ToHash(old_checkpoint.root_hash()),
                                       ToHash(now.root_hash()), proof)
                  .ok());
  // Out of range requests are refused, not guessed at.
  EXPECT_TRUE(absl::IsInvalidArgument(tlog_->InclusionProof(now.tree_size(), now.tree_size()).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(tlog_->InclusionProof(0, now.tree_size() + 1).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(tlog_->ConsistencyProof(5, 4).status()));
}

TEST_F(TransparencyTest, TreeSurvivesRestartAndNewCheckpointsStayConsistent) {
  Append(9);
  tellonce::v1::Checkpoint before = Fresh();
  Append(5);  // appended, perhaps not yet hashed, when the process goes away
  Close();
  Open();
  Append(3);
  tellonce::v1::Checkpoint after = Fresh();
  const std::vector<std::string> leaves = StoredLeaves();
  ASSERT_EQ(after.tree_size(), 17u);
  EXPECT_EQ(ToHash(after.root_hash()), ReferenceRoot(leaves, 0, leaves.size()));
  absl::StatusOr<tellonce::v1::GetConsistencyProofResponse> c =
      tlog_->ConsistencyProof(before.tree_size(), after.tree_size());
  ASSERT_TRUE(c.ok());
  std::vector<certs::Hash> proof;
  for (const std::string& h : c->proof()) proof.push_back(ToHash(h));
  EXPECT_TRUE(certs::VerifyConsistency(before.tree_size(), after.tree_size(),
                                       ToHash(before.root_hash()), ToHash(after.root_hash()),
                                       proof)
                  .ok());
  absl::StatusOr<std::vector<SignedCheckpoint>> all = tlog_->Checkpoints();
  ASSERT_TRUE(all.ok());
  EXPECT_GE(all->size(), 2u);
}

TEST_F(TransparencyTest, ListShowsOneCitizensEventsAndFiltersByConsumerAndPages) {
  Append(3, "37605030299", "tax");
  Append(2, "49403136526", "tax");
  Append(4, "37605030299", "benefits");
  absl::StatusOr<tellonce::v1::ListAccessEventsResponse> all = tlog_->List(
      "37605030299", std::nullopt, absl::InfinitePast(), absl::InfiniteFuture(), 0, "");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->events_size(), 7);
  for (const auto& e : all->events()) EXPECT_EQ(e.event().citizen_id(), "37605030299");
  absl::StatusOr<tellonce::v1::ListAccessEventsResponse> tax = tlog_->List(
      "37605030299", std::string("tax"), absl::InfinitePast(), absl::InfiniteFuture(), 0, "");
  ASSERT_TRUE(tax.ok());
  EXPECT_EQ(tax->events_size(), 3);
  for (const auto& e : tax->events()) EXPECT_EQ(e.event().consumer(), "tax");

  std::vector<uint64_t> paged;
  std::string token;
  do {
    absl::StatusOr<tellonce::v1::ListAccessEventsResponse> page = tlog_->List(
        "37605030299", std::nullopt, absl::InfinitePast(), absl::InfiniteFuture(), 2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& e : page->events()) paged.push_back(e.index());
    token = page->next_page_token();
  } while (!token.empty());
  ASSERT_EQ(paged.size(), 7u);
  for (size_t i = 1; i < paged.size(); ++i) EXPECT_LT(paged[i - 1], paged[i]);
  EXPECT_TRUE(absl::IsInvalidArgument(tlog_->List("37605030299", std::nullopt,
                                                  absl::InfinitePast(), absl::InfiniteFuture(), 2,
                                                  "not-a-number")
                                          .status()));
}

// Found by tests/fuzz/page_token_fuzz.cc (corpus seed-events-max-token): the token
// 2^64-1 decoded, and listing from "token + 1" wrapped to index 0, handing out the first
// page again as if it came after the token.
TEST_F(TransparencyTest, LargestPageTokenIsMalformedNotAWrapToTheFirstPage) {
  Append(3);
  absl::StatusOr<tellonce::v1::ListAccessEventsResponse> page =
      tlog_->List("37605030299", std::nullopt, absl::InfinitePast(), absl::InfiniteFuture(), 2,
                  "18446744073709551615");
  EXPECT_TRUE(absl::IsInvalidArgument(page.status())) << page.status();
  absl::StatusOr<tellonce::v1::ListAccessEventsResponse> last =
      tlog_->List("37605030299", std::nullopt, absl::InfinitePast(), absl::InfiniteFuture(), 2,
                  "18446744073709551614");
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->events_size(), 0);
}

TEST_F(TransparencyTest, ExportCarriesEventsLeafHashesAndCheckpoints) {
  Append(12);
  Fresh();
  absl::StatusOr<tellonce::v1::ExportAccessLogResponse> page = tlog_->Export(0, 5);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->events_size(), 5);
  EXPECT_EQ(page->log_size(), 12u);
  // Checkpoints are paged apart from the events.
  EXPECT_EQ(page->checkpoints_size(), 0);
  for (const auto& e : page->events()) {
    EXPECT_EQ(ToHash(e.leaf_hash()), certs::LeafHash(e.event_bytes()));
  }
  absl::StatusOr<tellonce::v1::ExportAccessLogResponse> rest = tlog_->Export(10, 5);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->events_size(), 2);
  EXPECT_EQ(rest->checkpoints_size(), 0);
}

TEST_F(TransparencyTest, ExportPagesStayWithinTheirByteBudgetAndCheckpointsPageApart) {
  for (int i = 0; i < 20; ++i) {
    Append(10);
    Fresh();
  }
  // Events: pages of at most 2,000 bytes (but at least one event) cover the whole log.
  uint64_t next = 0;
  int pages = 0;
  while (next < 200) {
    absl::StatusOr<tellonce::v1::ExportAccessLogResponse> page = tlog_->Export(next, 0, 2000);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_GT(page->events_size(), 0);
    EXPECT_LE(page->ByteSizeLong(), 2000u + 200u);
    EXPECT_EQ(page->events(0).index(), next);
    next = page->events(page->events_size() - 1).index() + 1;
    ++pages;
  }
  EXPECT_GT(pages, 2);
  // Checkpoints: 21 (size 10, 20, ... 200 and the empty one), in small pages.
  std::vector<uint64_t> sizes;
  tellonce::v1::ExportCheckpointsResponse page;
  uint64_t start = 0;
  do {
    absl::StatusOr<tellonce::v1::ExportCheckpointsResponse> got = tlog_->ExportCheckpoints(start, 500);
    ASSERT_TRUE(got.ok()) << got.status();
    page = *got;
    ASSERT_GT(page.checkpoints_size(), 0);
    EXPECT_LE(page.ByteSizeLong(), 500u + 200u);
    for (const auto& c : page.checkpoints()) {
      tellonce::v1::Checkpoint body;
      ASSERT_TRUE(body.ParseFromString(c.body()));
      if (body.tree_size() > 0) sizes.push_back(body.tree_size());  // the empty log's may be there
    }
    start = page.next_start_size();
  } while (page.more());
  ASSERT_EQ(sizes.size(), 20u);
  for (size_t i = 0; i < sizes.size(); ++i) EXPECT_EQ(sizes[i], 10 * (i + 1));
}

class CoalescingTransparencyTest : public TransparencyTest {
 protected:
  void SetUp() override {
    fresh_interval_ = absl::Seconds(1);
    TransparencyTest::SetUp();
  }
};

TEST_F(CoalescingTransparencyTest, ConcurrentFreshRequestsShareOneSignaturePerInterval) {
  Append(1);
  const tellonce::v1::Checkpoint first = Fresh();
  ASSERT_EQ(first.tree_size(), 1u);
  // Nothing new: the latest checkpoint covers every request, at once, without signing.
  const absl::Time start = absl::Now();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(Fresh().signed_at().seconds(), first.signed_at().seconds());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  // New events and 50 concurrent requests: all get one checkpoint covering them, signed
  // no sooner than a second after the previous one.
  Append(3);
  std::vector<std::promise<absl::StatusOr<SignedCheckpoint>>> done(50);
  for (auto& d : done) {
    tlog_->FreshCheckpoint([&d](absl::StatusOr<SignedCheckpoint> c) { d.set_value(c); });
  }
  std::set<std::string> signatures;
  for (auto& d : done) {
    absl::StatusOr<SignedCheckpoint> c = d.get_future().get();
    ASSERT_TRUE(c.ok()) << c.status();
    signatures.insert(c->signature());
    tellonce::v1::Checkpoint body;
    ASSERT_TRUE(body.ParseFromString(c->body()));
    EXPECT_EQ(body.tree_size(), 4u);
  }
  EXPECT_EQ(signatures.size(), 1u);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(900));
  // Stored: the checkpoints of sizes 1 and 4 (and perhaps the empty log's), no others.
  std::set<uint64_t> stored;
  absl::StatusOr<std::vector<SignedCheckpoint>> checkpoints = tlog_->Checkpoints();
  ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
  for (const SignedCheckpoint& c : *checkpoints) {
    tellonce::v1::Checkpoint body;
    ASSERT_TRUE(body.ParseFromString(c.body()));
    stored.insert(body.tree_size());
  }
  stored.erase(0);
  EXPECT_EQ(stored, (std::set<uint64_t>{1, 4}));
}

// Found by tests/unit/power_loss_test.cc: once the store failed (here: the power is cut,
// so every write fails), the hashing thread retried in a busy loop, logging a warning
// each time, and a fresh-checkpoint request for events it could not hash was never
// answered. It must be answered (with the error), and the thread must pause.
TEST_F(TransparencyTest, FreshCheckpointWaiterIsAnsweredWhenTheStoreFails) {
  Close();
  auto fs = std::make_shared<testing::PowerLossFileSystem>(1);
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  env_ = env.get();
  Open();
  Fresh();
  Append(3);
  fs->PowerCut();
  auto done = std::make_shared<std::promise<absl::StatusOr<SignedCheckpoint>>>();
  tlog_->FreshCheckpoint([done](absl::StatusOr<SignedCheckpoint> c) { done->set_value(c); });
  std::future<absl::StatusOr<SignedCheckpoint>> answer = done->get_future();
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "a waiter for events the store cannot hash was never answered";
  absl::StatusOr<SignedCheckpoint> c = answer.get();
  // Hashed before the cut (a race the test cannot exclude), or refused with the reason.
  EXPECT_TRUE(c.ok() || absl::IsUnavailable(c.status())) << c.status();
  Close();
  env_ = nullptr;
}

}  // namespace
}  // namespace tellonce::broker
