#include "certs/merkle.h"

#include <bit>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tellonce::certs {
namespace {

using ::testing::ElementsAreArray;

Hash FromHex(std::string_view hex) {
  Hash hash{};
  EXPECT_EQ(hex.size(), 64u) << hex;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i < hash.size() && 2 * i + 1 < hex.size(); ++i) {
    hash[i] = static_cast<unsigned char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return hash;
}

std::vector<Hash> FromHex(const std::vector<std::string_view>& hexes) {
  std::vector<Hash> hashes;
  for (std::string_view hex : hexes) hashes.push_back(FromHex(hex));
  return hashes;
}

std::string FromHexBytes(std::string_view hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------
// A deliberately naive reference: RFC 6962 2.1's recursive MTH, PATH and PROOF, word for
// word, over the full list of leaf hashes (MTH({d}) = LeafHash(d) is applied up front).

using Leaves = absl::Span<const Hash>;

uint64_t LargestPowerOfTwoBelow(uint64_t n) {
  uint64_t k = 1;
  while (2 * k < n) k *= 2;
  return k;
}

Hash RefMth(Leaves d) {
  if (d.empty()) return FromHex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  if (d.size() == 1) return d[0];
  const uint64_t k = LargestPowerOfTwoBelow(d.size());
  return NodeHash(RefMth(d.subspan(0, k)), RefMth(d.subspan(k)));
}

std::vector<Hash> RefPath(uint64_t m, Leaves d) {
  if (d.size() == 1) return {};
  const uint64_t k = LargestPowerOfTwoBelow(d.size());
  std::vector<Hash> path;
  if (m < k) {
    path = RefPath(m, d.subspan(0, k));
    path.push_back(RefMth(d.subspan(k)));
  } else {
    path = RefPath(m - k, d.subspan(k));
    path.push_back(RefMth(d.subspan(0, k)));
  }
  return path;
}

std::vector<Hash> RefSubproof(uint64_t m, Leaves d, bool b) {
  if (m == d.size()) return b ? std::vector<Hash>{} : std::vector<Hash>{RefMth(d)};
  const uint64_t k = LargestPowerOfTwoBelow(d.size());
  std::vector<Hash> proof;
  if (m <= k) {
    proof = RefSubproof(m, d.subspan(0, k), b);
    proof.push_back(RefMth(d.subspan(k)));
  } else {
    proof = RefSubproof(m - k, d.subspan(k), false);
    proof.push_back(RefMth(d.subspan(0, k)));
  }
  return proof;
}

// PROOF(m, D[n]); the RFC defines it for 0 < m < n, the library also returns {} for m = 0
// and m = n.
std::vector<Hash> RefProof(uint64_t m, Leaves d) {
  if (m == 0 || m == d.size()) return {};
  return RefSubproof(m, d, true);
}

// ---------------------------------------------------------------------------------------
// The stored-subtree side: every node TreeBuilder::Append reports, in a map, served as a
// SubtreeHashFn that refuses subtrees not wholly inside the tree size being asked about.

class StoredTree {
 public:
  explicit StoredTree(const std::vector<std::string>& data) {
    TreeBuilder builder;
    for (const std::string& leaf : data) {
      leaves_.push_back(LeafHash(leaf));
      for (const TreeBuilder::Node& node : builder.Append(leaves_.back())) {
        const bool inserted = nodes_.emplace(std::pair(node.level, node.index), node.hash).second;
        EXPECT_TRUE(inserted) << "subtree reported twice: " << node.level << "/" << node.index;
      }
    }
  }

  static StoredTree WithLeaves(uint64_t n) {
    std::vector<std::string> data;
    for (uint64_t i = 0; i < n; ++i) data.push_back(absl::StrCat("leaf ", i));
    return StoredTree(data);
  }

  Leaves leaves(uint64_t size) const { return Leaves(leaves_).subspan(0, size); }
  size_t node_count() const { return nodes_.size(); }

  // A SubtreeHashFn for the tree of the first `size` leaves; counts its calls.
  auto Fn(uint64_t size) {
    calls_ = 0;
    return [this, size](int level, uint64_t index) -> absl::StatusOr<Hash> {
      ++calls_;
      if (level < 0 || level > 40 || ((index + 1) << level) > size) {
        return absl::OutOfRangeError(
            absl::StrCat("subtree ", level, "/", index, " is not inside size ", size));
      }
      auto it = nodes_.find({level, index});
      if (it == nodes_.end()) return absl::NotFoundError("not stored");
      return it->second;
    };
  }
  int calls() const { return calls_; }

 private:
  std::vector<Hash> leaves_;
  std::map<std::pair<int, uint64_t>, Hash> nodes_;
  int calls_ = 0;
};

// ---------------------------------------------------------------------------------------
// Known answers: the RFC 6962 reference vectors of Certificate Transparency
// (transparency-dev/merkle testonly), checked against both implementations.

const std::vector<std::string> kRfcLeafData = {"",
                                               FromHexBytes("00"),
                                               FromHexBytes("10"),
                                               FromHexBytes("2021"),
                                               FromHexBytes("3031"),
                                               FromHexBytes("40414243"),
                                               FromHexBytes("5051525354555657"),
                                               FromHexBytes("606162636465666768696a6b6c6d6e6f")};

// Root of the tree over the first n leaves, n = 0..8.
const std::vector<std::string_view> kRfcRoots = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

struct InclusionVector {
  uint64_t index, size;
  std::vector<std::string_view> proof;
};
const std::vector<InclusionVector> kRfcInclusionProofs = {
    {0, 1, {}},
    {0, 2, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"}},
    {1, 2, {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"}},
    {2, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {1,
     5,
     {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {0,
     8,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {5,
     8,
     {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
};

struct ConsistencyVector {
  uint64_t old_size, new_size;
  std::vector<std::string_view> proof;
};
const std::vector<ConsistencyVector> kRfcConsistencyProofs = {
    {1, 1, {}},
    {1,
     8,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {2,
     5,
     {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {6,
     8,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
};

TEST(MerkleKnownAnswerTest, EmptyTreeHashIsSha256OfTheEmptyString) {
  EXPECT_EQ(HashToHex(EmptyTreeHash()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HashToHex(TreeBuilder().Root()), HashToHex(EmptyTreeHash()));
}

TEST(MerkleKnownAnswerTest, LeafHashOfTheEmptyLeafIsTheSizeOneRoot) {
  EXPECT_EQ(HashToHex(LeafHash("")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
}

TEST(MerkleKnownAnswerTest, RootsOfThePublishedLeavesMatchThePublishedRoots) {
  StoredTree tree(kRfcLeafData);
  for (uint64_t n = 0; n <= 8; ++n) {
    SCOPED_TRACE(n);
    EXPECT_EQ(HashToHex(RefMth(tree.leaves(n))), kRfcRoots[n]);
    absl::StatusOr<Hash> root = RootHash(n, tree.Fn(n));
    ASSERT_TRUE(root.ok()) << root.status();
    EXPECT_EQ(HashToHex(*root), kRfcRoots[n]);
  }
}

TEST(MerkleKnownAnswerTest, InclusionProofsMatchThePublishedProofsAndVerify) {
  StoredTree tree(kRfcLeafData);
  for (const InclusionVector& v : kRfcInclusionProofs) {
    SCOPED_TRACE(absl::StrCat("index ", v.index, " size ", v.size));
    const std::vector<Hash> expected = FromHex(v.proof);
    EXPECT_THAT(RefPath(v.index, tree.leaves(v.size)), ElementsAreArray(expected));
    absl::StatusOr<std::vector<Hash>> proof = InclusionProof(v.index, v.size, tree.Fn(v.size));
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_THAT(*proof, ElementsAreArray(expected));
    EXPECT_TRUE(VerifyInclusion(v.index, v.size, LeafHash(kRfcLeafData[v.index]), expected,
                                FromHex(kRfcRoots[v.size]))
                    .ok());
  }
}

TEST(MerkleKnownAnswerTest, ConsistencyProofsMatchThePublishedProofsAndVerify) {
  StoredTree tree(kRfcLeafData);
  for (const ConsistencyVector& v : kRfcConsistencyProofs) {
    SCOPED_TRACE(absl::StrCat("old ", v.old_size, " new ", v.new_size));
    const std::vector<Hash> expected = FromHex(v.proof);
    EXPECT_THAT(RefProof(v.old_size, tree.leaves(v.new_size)), ElementsAreArray(expected));
    absl::StatusOr<std::vector<Hash>> proof =
        ConsistencyProof(v.old_size, v.new_size, tree.Fn(v.new_size));
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_THAT(*proof, ElementsAreArray(expected));
    EXPECT_TRUE(VerifyConsistency(v.old_size, v.new_size, FromHex(kRfcRoots[v.old_size]),
                                  FromHex(kRfcRoots[v.new_size]), expected)
                    .ok());
  }
}

TEST(MerkleHashTest, HashFromBytesRoundTripsAndRejectsOtherLengths) {
  const Hash hash = LeafHash("x");
  absl::StatusOr<Hash> back =
      HashFromBytes(std::string_view(reinterpret_cast<const char*>(hash.data()), hash.size()));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, hash);
  EXPECT_EQ(HashFromBytes(std::string(31, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HashFromBytes(std::string(33, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------
// Stored subtrees agree with the reference, with O(log n) subtree reads.

const std::vector<uint64_t> kLargeSizes = {127, 128, 129, 255, 256, 257, 300, 511, 512, 513};

std::vector<uint64_t> TestSizes() {
  std::vector<uint64_t> sizes;
  for (uint64_t n = 0; n <= 70; ++n) sizes.push_back(n);
  sizes.insert(sizes.end(), kLargeSizes.begin(), kLargeSizes.end());
  return sizes;
}

// All of [0, n) for small n, else a spread that includes both ends and powers of two.
std::set<uint64_t> Sample(uint64_t n) {
  std::set<uint64_t> picks;
  for (uint64_t i = 0; i < n; i += n <= 70 ? 1 : 23) picks.insert(i);
  for (uint64_t p = 1; p < n; p *= 2) picks.insert({p - 1, p, p + 1});
  if (n > 0) picks.insert({n - 2, n - 1});
  std::erase_if(picks, [n](uint64_t i) { return i >= n; });
  return picks;
}

// Generous O(log n) bound on the subtree reads of one proof.
int CallBound(uint64_t n) { return 2 * std::bit_width(n) + 2; }

TEST(MerkleStoredTreeTest, RootHashMatchesReferenceFromAtMostPopcountReads) {
  StoredTree tree = StoredTree::WithLeaves(513);
  for (uint64_t n : TestSizes()) {
    SCOPED_TRACE(n);
    absl::StatusOr<Hash> root = RootHash(n, tree.Fn(n));
    ASSERT_TRUE(root.ok()) << root.status();
    EXPECT_EQ(*root, RefMth(tree.leaves(n)));
    EXPECT_LE(tree.calls(), std::popcount(n));
  }
}

TEST(MerkleStoredTreeTest, InclusionProofsMatchReferenceAndVerify) {
  StoredTree tree = StoredTree::WithLeaves(513);
  for (uint64_t n : TestSizes()) {
    const Hash root = RefMth(tree.leaves(n));
    for (uint64_t i : Sample(n)) {
      SCOPED_TRACE(absl::StrCat("index ", i, " size ", n));
      absl::StatusOr<std::vector<Hash>> proof = InclusionProof(i, n, tree.Fn(n));
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_LE(tree.calls(), CallBound(n));
      EXPECT_EQ(*proof, RefPath(i, tree.leaves(n)));
      EXPECT_TRUE(VerifyInclusion(i, n, tree.leaves(n)[i], *proof, root).ok());
    }
  }
}

TEST(MerkleStoredTreeTest, ConsistencyProofsMatchReferenceAndVerify) {
  StoredTree tree = StoredTree::WithLeaves(513);
  std::vector<std::pair<uint64_t, uint64_t>> pairs;
  for (uint64_t n = 0; n <= 40; ++n) {
    for (uint64_t m = 0; m <= n; ++m) pairs.emplace_back(m, n);
  }
  for (uint64_t n : TestSizes()) {
    if (n <= 40) continue;
    for (uint64_t m : Sample(n + 1)) pairs.emplace_back(m, n);
  }
  for (auto [m, n] : pairs) {
    SCOPED_TRACE(absl::StrCat("old ", m, " new ", n));
    absl::StatusOr<std::vector<Hash>> proof = ConsistencyProof(m, n, tree.Fn(n));
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_LE(tree.calls(), CallBound(n));
    EXPECT_EQ(*proof, RefProof(m, tree.leaves(n)));
    EXPECT_TRUE(
        VerifyConsistency(m, n, RefMth(tree.leaves(m)), RefMth(tree.leaves(n)), *proof).ok());
  }
}

TEST(MerkleStoredTreeTest, SubtreeReadErrorsAreReturnedUnchanged) {
  auto failing = [](int, uint64_t) -> absl::StatusOr<Hash> {
    return absl::UnavailableError("disk gone");
  };
  EXPECT_EQ(RootHash(5, failing).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(InclusionProof(2, 5, failing).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ConsistencyProof(3, 5, failing).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(TreeBuilder::Restore(5, failing).status().code(), absl::StatusCode::kUnavailable);
  // Nothing to read: no call, no error.
  EXPECT_TRUE(RootHash(0, failing).ok());
  EXPECT_TRUE(InclusionProof(0, 1, failing).ok());
  EXPECT_TRUE(ConsistencyProof(4, 4, failing).ok());
}

// ---------------------------------------------------------------------------------------
// Malformed claims and proofs are rejected.

const std::vector<uint64_t> kEdgeSizes = {0, 1, 2, 3, 7, 8, 9, 16, 33};

absl::StatusCode Code(const absl::Status& status) { return status.code(); }
constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
constexpr auto kMismatch = absl::StatusCode::kFailedPrecondition;

Hash Flip(Hash hash, int bit) {
  hash[bit / 8] ^= static_cast<unsigned char>(1 << (bit % 8));
  return hash;
}

TEST(MerkleVerifyTest, InclusionIsRejectedForAnyDamageToClaimOrProof) {
  StoredTree tree = StoredTree::WithLeaves(34);
  for (uint64_t n : kEdgeSizes) {
    const Hash root = RefMth(tree.leaves(n));
    EXPECT_EQ(Code(InclusionProof(n, n, tree.Fn(n)).status()), kInvalid);
    EXPECT_EQ(Code(VerifyInclusion(n, n, LeafHash("x"), {}, root)), kInvalid);
    for (uint64_t i = 0; i < n; ++i) {
      SCOPED_TRACE(absl::StrCat("index ", i, " size ", n));
      const std::vector<Hash> proof = RefPath(i, tree.leaves(n));
      const Hash leaf = tree.leaves(n)[i];
      ASSERT_TRUE(VerifyInclusion(i, n, leaf, proof, root).ok());

      EXPECT_EQ(Code(VerifyInclusion(i, n, LeafHash("other"), proof, root)), kMismatch);
      EXPECT_EQ(Code(VerifyInclusion(i, n, leaf, proof, Flip(root, 7))), kMismatch);
      EXPECT_EQ(Code(VerifyInclusion(i, n, leaf, proof, EmptyTreeHash())), kMismatch);
      for (uint64_t j = 0; j < n; ++j) {
        if (j != i) {
          EXPECT_FALSE(VerifyInclusion(j, n, leaf, proof, root).ok()) << j;
        }
      }
      // The proof does not bind the size by itself (index 0 has the same path shape in
      // sizes 6 and 7); the root does: another size with its own root never accepts.
      for (uint64_t other : {n - 1, n + 1, 2 * n}) {
        if (other <= i || other == n || other > 34) continue;
        ASSERT_NE(RefPath(i, tree.leaves(other)), proof);
        EXPECT_FALSE(VerifyInclusion(i, other, leaf, proof, RefMth(tree.leaves(other))).ok())
            << other;
      }
      for (size_t k = 0; k < proof.size(); ++k) {
        for (int bit : {0, 100, 255}) {
          std::vector<Hash> flipped = proof;
          flipped[k] = Flip(flipped[k], bit);
          EXPECT_EQ(Code(VerifyInclusion(i, n, leaf, flipped, root)), kMismatch) << k;
        }
        std::vector<Hash> missing = proof;
        missing.erase(missing.begin() + k);
        EXPECT_EQ(Code(VerifyInclusion(i, n, leaf, missing, root)), kInvalid) << k;
      }
      std::vector<Hash> extra = proof;
      extra.push_back(root);
      EXPECT_EQ(Code(VerifyInclusion(i, n, leaf, extra, root)), kInvalid);
      extra = proof;
      extra.insert(extra.begin(), leaf);
      EXPECT_EQ(Code(VerifyInclusion(i, n, leaf, extra, root)), kInvalid);
    }
  }
}

TEST(MerkleVerifyTest, ConsistencyIsRejectedForAnyDamageToClaimOrProof) {
  StoredTree tree = StoredTree::WithLeaves(34);
  for (uint64_t n : kEdgeSizes) {
    const Hash new_root = RefMth(tree.leaves(n));
    for (uint64_t m : kEdgeSizes) {
      if (m > n) {
        EXPECT_EQ(Code(ConsistencyProof(m, n, tree.Fn(n)).status()), kInvalid);
        EXPECT_EQ(Code(VerifyConsistency(m, n, RefMth(tree.leaves(m)), new_root, {})), kInvalid);
        continue;
      }
      SCOPED_TRACE(absl::StrCat("old ", m, " new ", n));
      const Hash old_root = RefMth(tree.leaves(m));
      const std::vector<Hash> proof = RefProof(m, tree.leaves(n));
      ASSERT_TRUE(VerifyConsistency(m, n, old_root, new_root, proof).ok());

      EXPECT_EQ(Code(VerifyConsistency(m, n, Flip(old_root, 3), new_root, proof)), kMismatch);
      if (m > 0) {  // Every tree extends the empty one, whatever its root.
        EXPECT_EQ(Code(VerifyConsistency(m, n, old_root, Flip(new_root, 3), proof)), kMismatch);
      }
      // Other sizes, each with its own root, never accept this proof (unless their own
      // proof happens to be the same, as for 0 -> n and n -> n, both empty).
      for (uint64_t other : {m + 1, m - 1, n + 1, n - 1}) {
        if (other > 34) continue;
        const Hash other_root = RefMth(tree.leaves(other));
        if (other != m && other <= n && RefProof(other, tree.leaves(n)) != proof) {
          EXPECT_FALSE(VerifyConsistency(other, n, other_root, new_root, proof).ok()) << other;
        }
        if (other != n && other >= m && RefProof(m, tree.leaves(other)) != proof) {
          EXPECT_FALSE(VerifyConsistency(m, other, old_root, other_root, proof).ok()) << other;
        }
      }
      for (size_t k = 0; k < proof.size(); ++k) {
        for (int bit : {0, 100, 255}) {
          std::vector<Hash> flipped = proof;
          flipped[k] = Flip(flipped[k], bit);
          EXPECT_EQ(Code(VerifyConsistency(m, n, old_root, new_root, flipped)), kMismatch) << k;
        }
        std::vector<Hash> missing = proof;
        missing.erase(missing.begin() + k);
        EXPECT_EQ(Code(VerifyConsistency(m, n, old_root, new_root, missing)), kInvalid) << k;
      }
      std::vector<Hash> extra = proof;
      extra.push_back(new_root);
      EXPECT_EQ(Code(VerifyConsistency(m, n, old_root, new_root, extra)), kInvalid);
      extra = proof;
      extra.insert(extra.begin(), old_root);
      EXPECT_EQ(Code(VerifyConsistency(m, n, old_root, new_root, extra)), kInvalid);
    }
  }
}

// RFC 9162's algorithm reads the size only for the proof's shape, so a size and root must
// come from the same signed tree head. This pins that property down for readers.
TEST(MerkleVerifyTest, TheSizeIsBoundByTheRootNotByTheProofAlone) {
  StoredTree tree = StoredTree::WithLeaves(7);
  const std::vector<Hash> proof = RefPath(0, tree.leaves(7));
  const Hash root7 = RefMth(tree.leaves(7));
  EXPECT_TRUE(VerifyInclusion(0, 6, tree.leaves(7)[0], proof, root7).ok());
  EXPECT_EQ(Code(VerifyInclusion(0, 6, tree.leaves(7)[0], proof, RefMth(tree.leaves(6)))),
            kMismatch);
}

TEST(MerkleVerifyTest, EqualSizesNeedEqualRootsAndAnEmptyProof) {
  const Hash root = LeafHash("a");
  EXPECT_TRUE(VerifyConsistency(1, 1, root, root, {}).ok());
  EXPECT_EQ(Code(VerifyConsistency(1, 1, root, LeafHash("b"), {})), kMismatch);
  EXPECT_EQ(Code(VerifyConsistency(0, 0, root, root, {})), kMismatch);
  EXPECT_TRUE(VerifyConsistency(0, 0, EmptyTreeHash(), EmptyTreeHash(), {}).ok());
}

// ---------------------------------------------------------------------------------------
// TreeBuilder.

TEST(TreeBuilderTest, AppendReportsTheLeafThenEachSubtreeItCompletes) {
  TreeBuilder builder;
  for (int i = 0; i < 7; ++i) builder.Append(LeafHash(absl::StrCat(i)));
  const Hash leaf = LeafHash("7");
  const std::vector<TreeBuilder::Node> nodes = builder.Append(leaf);
  ASSERT_EQ(nodes.size(), 4u);
  const std::vector<std::pair<int, uint64_t>> positions = {{0, 7}, {1, 3}, {2, 1}, {3, 0}};
  for (size_t k = 0; k < nodes.size(); ++k) {
    EXPECT_EQ(std::pair(nodes[k].level, nodes[k].index), positions[k]) << k;
  }
  EXPECT_EQ(nodes[0].hash, leaf);
  EXPECT_EQ(nodes[3].hash, builder.Root());
  EXPECT_EQ(builder.size(), 8u);
  EXPECT_EQ(builder.Append(LeafHash("8")).size(), 1u);
}

TEST(TreeBuilderTest, EveryCompleteSubtreeIsReportedExactlyOnce) {
  for (uint64_t n : {0, 1, 5, 64, 100, 513}) {
    // StoredTree fails on a repeated report; count what is there.
    StoredTree tree = StoredTree::WithLeaves(n);
    EXPECT_EQ(tree.node_count(), 2 * n - std::popcount(n)) << n;
  }
}

TEST(TreeBuilderTest, RootAfterEachAppendMatchesReference) {
  StoredTree tree = StoredTree::WithLeaves(300);
  TreeBuilder builder;
  EXPECT_EQ(builder.Root(), EmptyTreeHash());
  for (uint64_t n = 1; n <= 300; ++n) {
    builder.Append(tree.leaves(300)[n - 1]);
    ASSERT_EQ(builder.Root(), RefMth(tree.leaves(n))) << n;
  }
}

TEST(TreeBuilderTest, RestoredBuilderHasTheSameRootAndContinuesIdentically) {
  StoredTree tree = StoredTree::WithLeaves(320);
  for (uint64_t n : {0, 1, 2, 3, 5, 8, 13, 64, 100, 255, 256, 257}) {
    SCOPED_TRACE(n);
    absl::StatusOr<TreeBuilder> restored = TreeBuilder::Restore(n, tree.Fn(n));
    ASSERT_TRUE(restored.ok()) << restored.status();
    EXPECT_LE(tree.calls(), std::popcount(n));
    TreeBuilder fresh;
    for (uint64_t i = 0; i < n; ++i) fresh.Append(tree.leaves(n)[i]);
    EXPECT_EQ(restored->size(), n);
    EXPECT_EQ(restored->Root(), fresh.Root());
    for (uint64_t i = n; i < n + 40; ++i) {
      const Hash leaf = tree.leaves(n + 40)[i];
      const std::vector<TreeBuilder::Node> a = restored->Append(leaf), b = fresh.Append(leaf);
      ASSERT_EQ(a.size(), b.size()) << i;
      for (size_t k = 0; k < a.size(); ++k) {
        EXPECT_EQ(a[k].level, b[k].level);
        EXPECT_EQ(a[k].index, b[k].index);
        EXPECT_EQ(a[k].hash, b[k].hash);
      }
      EXPECT_EQ(restored->Root(), fresh.Root()) << i;
    }
  }
}

}  // namespace
}  // namespace tellonce::certs
