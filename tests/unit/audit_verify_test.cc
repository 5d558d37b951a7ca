// Offline verification of an access log copy (cli/audit.h) on synthetic logs: a good
// log, and each kind of damage the verifier must locate.

#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certs/merkle.h"
#include "certs/signing.h"
#include "cli/audit.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tellonce/v1/exchange.pb.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_keys.h"

namespace tellonce::cli {
namespace {

using certs::Hash;
using ::testing::HasSubstr;
using ::testing::Optional;

std::string EventBytes(uint64_t i) {
  tellonce::v1::AccessEvent e;
  e.mutable_at()->set_seconds(1700000000 + static_cast<int64_t>(i));
  e.set_exchange_id(absl::StrCat("x", i));
  e.set_consumer(i % 2 == 0 ? "tax" : "benefits");
  e.set_provider("registry");
  e.set_citizen_id("37605030299");
  e.add_attributes("person.name");
  e.set_purpose("TAX_ASSESSMENT");
  e.set_outcome(i % 3 == 0 ? tellonce::v1::AccessEvent::DENIED
                           : tellonce::v1::AccessEvent::ALLOWED);
  std::string bytes;
  EXPECT_TRUE(e.SerializeToString(&bytes));
  return bytes;
}

// A log of `n` events stored as the broker stores it: every event, every complete
// subtree, and the tree heads after each size in `checkpoint_sizes`.
struct SyntheticLog {
  LogCopy copy;
  std::vector<TreeHead> heads;  // by size, in the order given

  TreeHead Head(uint64_t size) const {
    for (const TreeHead& h : heads) {
      if (h.size == size) return h;
    }
    ADD_FAILURE() << "no head of size " << size;
    return {};
  }
};

SyntheticLog MakeLog(uint64_t n, std::vector<uint64_t> checkpoint_sizes = {}) {
  SyntheticLog log;
  certs::TreeBuilder builder;
  auto record_head = [&] {
    for (uint64_t s : checkpoint_sizes) {
      if (s == builder.size()) log.heads.push_back({builder.size(), builder.Root()});
    }
  };
  record_head();
  for (uint64_t i = 0; i < n; ++i) {
    std::string bytes = EventBytes(i);
    for (const certs::TreeBuilder::Node& node : builder.Append(certs::LeafHash(bytes))) {
      log.copy.subtrees.push_back({node.level, node.index, node.hash});
    }
    log.copy.events.push_back({i, std::move(bytes)});
    record_head();
  }
  log.heads.push_back({n, builder.Root()});
  log.copy.claimed_size = n;
  return log;
}

TEST(AuditVerifyTest, GoodLogVerifiesAtEverySize) {
  for (uint64_t n : {0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 100}) {
    SyntheticLog log = MakeLog(n);
    LogVerdict v = VerifyLog(log.copy, log.Head(n), {});
    EXPECT_TRUE(v.ok) << n << ": " << v.Summary();
    EXPECT_EQ(v.Summary(),
              absl::StrCat("OK: ", n, " events verified against checkpoint of size ", n));
  }
}

TEST(AuditVerifyTest, LaterEventsBeyondTheCheckpointAreNotCoveredButDoNotFail) {
  SyntheticLog log = MakeLog(20, {13});
  LogVerdict v = VerifyLog(log.copy, log.Head(13), {});
  EXPECT_TRUE(v.ok) << v.Summary();
  EXPECT_EQ(v.uncovered, 7u);
  EXPECT_EQ(v.tree_size, 13u);
}

// Found by tests/fuzz/audit_log_fuzz.cc (corpus crash-disorder-beyond-checkpoint): events
// out of order after the checkpoint's size failed the check with a "first bad index" the
// checkpoint does not cover.
TEST(AuditVerifyTest, DisorderBeyondTheCheckpointIsNotCoveredAndDoesNotFail) {
  SyntheticLog log = MakeLog(5, {3});
  std::swap(log.copy.events[3], log.copy.events[4]);  // ..., 2, 4, 3
  LogVerdict v = VerifyLog(log.copy, log.Head(3), {});
  EXPECT_TRUE(v.ok) << v.Summary();
  EXPECT_EQ(v.uncovered, 2u);
  // Inside the checkpoint the same disorder is still the first bad index.
  LogVerdict full = VerifyLog(log.copy, log.Head(5), {});
  EXPECT_FALSE(full.ok);
  EXPECT_THAT(full.first_bad, Optional(3u)) << full.Summary();
}

TEST(AuditVerifyTest, OneChangedByteIsTheFirstBadIndex) {
  for (uint64_t k : {0, 6, 12}) {
    SyntheticLog log = MakeLog(13);
    log.copy.events[k].bytes[3] ^= 0x01;
    LogVerdict v = VerifyLog(log.copy, log.Head(13), {});
    EXPECT_FALSE(v.ok);
    EXPECT_THAT(v.first_bad, Optional(k));
    EXPECT_THAT(v.Summary(), HasSubstr(absl::StrCat("FAILED: first bad index ", k, ": ")));
    EXPECT_THAT(v.reason, HasSubstr("altered"));
  }
}

TEST(AuditVerifyTest, DeletedEventIsTheFirstBadIndex) {
  for (uint64_t k : {0, 5, 12}) {
    SyntheticLog log = MakeLog(13);
    log.copy.events.erase(log.copy.events.begin() + static_cast<long>(k));
    LogVerdict v = VerifyLog(log.copy, log.Head(13), {});
    EXPECT_FALSE(v.ok);
    EXPECT_THAT(v.first_bad, Optional(k)) << v.Summary();
    EXPECT_THAT(v.reason, HasSubstr("missing"));
  }
}

TEST(AuditVerifyTest, DeletedEventAndItsLeafHashIsStillFound) {
  SyntheticLog log = MakeLog(13);
  log.copy.events.erase(log.copy.events.begin() + 4);
  std::erase_if(log.copy.subtrees,
                [](const StoredSubtree& s) { return s.level == 0 && s.index == 4; });
  LogVerdict v = VerifyLog(log.copy, log.Head(13), {});
  EXPECT_FALSE(v.ok);
  EXPECT_THAT(v.first_bad, Optional(4u)) << v.Summary();
  EXPECT_THAT(v.reason, HasSubstr("missing"));
}

TEST(AuditVerifyTest, RenumberedEventsAfterADeletionNameTheDeletedIndex) {
  // The copy hides the deletion by shifting every later event down by one.
  SyntheticLog log = MakeLog(13);
  log.copy.events.erase(log.copy.events.begin() + 7);
  for (uint64_t i = 7; i < log.copy.events.size(); ++i) log.copy.events[i].index = i;
  LogVerdict v = VerifyLog(log.copy, log.Head(13), {});
  EXPECT_FALSE(v.ok);
  EXPECT_THAT(v.first_bad, Optional(7u)) << v.Summary();
}

TEST(AuditVerifyTest, SwappedEventsNameTheFirstOfThem) {
  SyntheticLog log = MakeLog(13);
  std::swap(log.copy.events[3].bytes, log.copy.events[9].bytes);
  LogVerdict v = VerifyLog(log.copy, log.Head(13), {});
  EXPECT_FALSE(v.ok);
  EXPECT_THAT(v.first_bad, Optional(3u)) << v.Summary();
  EXPECT_THAT(v.reason, HasSubstr("signed at index 9"));
}

TEST(AuditVerifyTest, ShortCopyFailsAtItsEnd) {
  SyntheticLog log = MakeLog(13);
  log.copy.events.resize(10);
  LogVerdict v = VerifyLog(log.copy, log.Head(13), {});
  EXPECT_FALSE(v.ok);
  EXPECT_THAT(v.first_bad, Optional(10u)) << v.Summary();
}

TEST(AuditVerifyTest, DuplicatedEventRecordIsReported) {
  SyntheticLog log = MakeLog(6);
  log.copy.events.insert(log.copy.events.begin() + 3, log.copy.events[2]);
  LogVerdict v = VerifyLog(log.copy, log.Head(6), {});
  EXPECT_FALSE(v.ok);
  EXPECT_THAT(v.first_bad, Optional(2u)) << v.Summary();
}

TEST(AuditVerifyTest, DamagedStoredLeafHashWithIntactEventsIsAStoredTreeFailure) {
  SyntheticLog log = MakeLog(13);
  for (StoredSubtree& s : log.copy.subtrees) {
    if (s.level == 0 && s.index == 5) s.hash[0] ^= 0xff;
  }
  LogVerdict v = VerifyLog(log.copy, log.Head(13), {});
  EXPECT_FALSE(v.ok);
  EXPECT_THAT(v.first_bad, Optional(5u)) << v.Summary();
  EXPECT_THAT(v.reason, HasSubstr("stored Merkle tree is damaged"));
  EXPECT_THAT(v.reason, HasSubstr("events are intact"));
}

TEST(AuditVerifyTest, MissingStoredLeafHashWithIntactEventsIsAStoredTreeFailure) {
  SyntheticLog log = MakeLog(9);
  std::erase_if(log.copy.subtrees,
                [](const StoredSubtree& s) { return s.level == 0 && s.index == 8; });
  LogVerdict v = VerifyLog(log.copy, log.Head(9), {});
  EXPECT_FALSE(v.ok);
  EXPECT_THAT(v.first_bad, Optional(8u)) << v.Summary();
  EXPECT_THAT(v.reason, HasSubstr("stored leaf hash missing"));
}

TEST(AuditVerifyTest, DamagedInteriorSubtreeIsReportedAtItsFirstLeaf) {
  SyntheticLog log = MakeLog(13);
  for (StoredSubtree& s : log.copy.subtrees) {
    if (s.level == 2 && s.index == 1) s.hash[7] ^= 0x10;  // covers events 4..7
  }
  LogVerdict v = VerifyLog(log.copy, log.Head(13), {});
  EXPECT_FALSE(v.ok);
  EXPECT_THAT(v.first_bad, Optional(4u)) << v.Summary();
  EXPECT_THAT(v.reason, HasSubstr("level 2 over events 4..7"));
}

TEST(AuditVerifyTest, EventAndLeafHashRewrittenTogetherIsFoundBetweenCheckpoints) {
  SyntheticLog log = MakeLog(16, {4, 8, 12});
  // Event 9 rewritten with a matching leaf hash (and the tree above it rebuilt): the
  // copy is self-consistent, only the signatures give it away.
  log.copy.events[9].bytes = EventBytes(1000);
  SyntheticLog rebuilt;
  {
    certs::TreeBuilder builder;
    for (const StoredEvent& e : log.copy.events) {
      for (const auto& node : builder.Append(certs::LeafHash(e.bytes))) {
        rebuilt.copy.subtrees.push_back({node.level, node.index, node.hash});
      }
    }
  }
  log.copy.subtrees = rebuilt.copy.subtrees;
  LogVerdict v = VerifyLog(log.copy, log.Head(16), {log.Head(4), log.Head(8), log.Head(12)});
  EXPECT_FALSE(v.ok);
  EXPECT_FALSE(v.first_bad.has_value());
  EXPECT_EQ(v.bad_from, 8u);
  EXPECT_EQ(v.bad_to, 12u);
  EXPECT_THAT(v.Summary(), HasSubstr("FAILED: first bad index in 8..11: "));
  EXPECT_THAT(v.reason, HasSubstr("rewritten together"));

  // Without other checkpoints, all that is known is that something is wrong.
  v = VerifyLog(log.copy, log.Head(16), {});
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.bad_from, 0u);
  EXPECT_EQ(v.bad_to, 16u);
}

TEST(AuditVerifyTest, WrongCheckpointRootFails) {
  SyntheticLog log = MakeLog(5);
  TreeHead head = log.Head(5);
  head.root[0] ^= 1;
  LogVerdict v = VerifyLog(log.copy, head, {});
  EXPECT_FALSE(v.ok);
  EXPECT_THAT(v.Summary(), HasSubstr("FAILED"));
}

TEST(AuditVerifyTest, ExportFileRoundTripsAndVerifies) {
  testing::TempDir dir;
  SyntheticLog log = MakeLog(37, {10, 20});
  const std::string path = dir.path() + "/log.export";
  ASSERT_TRUE(WriteExportFile(path, log.copy).ok());
  absl::StatusOr<LogCopy> read = ReadExportFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->claimed_size, 37u);
  ASSERT_EQ(read->events.size(), 37u);
  EXPECT_EQ(read->events[36].bytes, log.copy.events[36].bytes);
  // Only the leaves travel in an export.
  EXPECT_EQ(read->subtrees.size(), 37u);
  EXPECT_TRUE(VerifyLog(*read, log.Head(37), {}).ok);

  // A file cut short is refused, naming the record.
  absl::StatusOr<std::string> bytes = [&]() -> absl::StatusOr<std::string> {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  ASSERT_TRUE(bytes.ok());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes->substr(0, bytes->size() - 5);
  absl::StatusOr<LogCopy> truncated = ReadExportFile(path);
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(truncated.status().message(), HasSubstr("record 37"));

  std::ofstream(path, std::ios::binary | std::ios::trunc) << "not an export";
  EXPECT_EQ(ReadExportFile(path).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(AuditVerifyTest, CheckpointSignatureAndIssuerAreChecked) {
  absl::StatusOr<certs::SigningKey> signer = certs::SigningKey::FromPem(testing::NewP256KeyPem());
  ASSERT_TRUE(signer.ok()) << signer.status();
  absl::StatusOr<certs::VerifyingKey> public_key =
      certs::VerifyingKey::FromPublicKeyPem(signer->PublicKeyPem());
  ASSERT_TRUE(public_key.ok()) << public_key.status();
  certs::VerifyingKeySet keys;
  ASSERT_TRUE(keys.Add("k-1", *public_key).ok());
  const certs::VerifyingKeySet* key = &keys;
  const std::string issuer = "spiffe://tellonce.local/broker";

  tellonce::v1::Checkpoint body;
  body.set_issuer(issuer);
  body.set_tree_size(3);
  Hash root = MakeLog(3).Head(3).root;
  body.set_root_hash(std::string(root.begin(), root.end()));
  tellonce::v1::SignedCheckpoint signed_checkpoint;
  signed_checkpoint.set_body(body.SerializeAsString());
  signed_checkpoint.set_signature(
      *signer->Sign(certs::SignedKind::kCheckpoint, signed_checkpoint.body()));
  signed_checkpoint.set_signature_algorithm(std::string(certs::kSignatureAlgorithm));
  signed_checkpoint.set_key_id("k-1");

  absl::StatusOr<tellonce::v1::Checkpoint> parsed =
      VerifyCheckpoint(signed_checkpoint, *key, issuer);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<TreeHead> head = ToTreeHead(*parsed);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, 3u);
  EXPECT_EQ(head->root, root);

  EXPECT_EQ(
      VerifyCheckpoint(signed_checkpoint, *key, "spiffe://other.example/broker").status().code(),
      absl::StatusCode::kInvalidArgument);
  tellonce::v1::SignedCheckpoint tampered = signed_checkpoint;
  (*tampered.mutable_body())[tampered.body().size() - 1] ^= 1;
  EXPECT_EQ(VerifyCheckpoint(tampered, *key, issuer).status().code(),
            absl::StatusCode::kUnauthenticated);

  // A key id the set does not hold, and a receipt's signature over the same bytes.
  tellonce::v1::SignedCheckpoint unknown_key = signed_checkpoint;
  unknown_key.set_key_id("k-2");
  EXPECT_EQ(VerifyCheckpoint(unknown_key, *key, issuer).status().code(),
            absl::StatusCode::kUnauthenticated);
  tellonce::v1::SignedCheckpoint receipt_signature = signed_checkpoint;
  receipt_signature.set_signature(
      *signer->Sign(certs::SignedKind::kConsentReceipt, signed_checkpoint.body()));
  EXPECT_EQ(VerifyCheckpoint(receipt_signature, *key, issuer).status().code(),
            absl::StatusCode::kUnauthenticated);

  // A rotated key set: the old key still verifies what it signed.
  absl::StatusOr<certs::SigningKey> next = certs::SigningKey::FromPem(testing::NewP256KeyPem());
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(keys.Add("k-2", *certs::VerifyingKey::FromPublicKeyPem(next->PublicKeyPem())).ok());
  EXPECT_TRUE(VerifyCheckpoint(signed_checkpoint, keys, issuer).ok());
  tellonce::v1::SignedCheckpoint by_next = signed_checkpoint;
  by_next.set_key_id("k-2");
  by_next.set_signature(*next->Sign(certs::SignedKind::kCheckpoint, by_next.body()));
  EXPECT_TRUE(VerifyCheckpoint(by_next, keys, issuer).ok());
}

}  // namespace
}  // namespace tellonce::cli
