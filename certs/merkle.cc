#include "certs/merkle.h"

#include <algorithm>
#include <bit>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace tellonce::certs {
namespace {

std::string_view Bytes(const Hash& hash) {
  return std::string_view(reinterpret_cast<const char*>(hash.data()), hash.size());
}

// The complete subtrees that tile the leaves [begin, begin + count), largest first: one
// per set bit of count. `begin` must be a multiple of the power of two at or above
// count, which holds for every range RFC 6962's recursion visits.
absl::StatusOr<std::vector<Hash>> Tiles(uint64_t begin, uint64_t count, SubtreeHashFn subtree) {
  std::vector<Hash> tiles;
  for (int level = 63; level >= 0; --level) {
    if ((count >> level & 1) == 0) continue;
    absl::StatusOr<Hash> tile = subtree(level, begin >> level);
    if (!tile.ok()) return tile.status();
    tiles.push_back(*tile);
    begin += uint64_t{1} << level;
  }
  return tiles;
}

// MTH of a range from its non-empty tiling: the left part of each split is the largest
// tile and the right part is the rest, so the tree folds from the right.
Hash FoldTiles(const std::vector<Hash>& tiles) {
  Hash hash = tiles.back();
  for (size_t i = tiles.size() - 1; i-- > 0;) hash = NodeHash(tiles[i], hash);
  return hash;
}

// MTH(D[begin : begin + count]), count > 0, `begin` aligned as for Tiles.
absl::StatusOr<Hash> RangeHash(uint64_t begin, uint64_t count, SubtreeHashFn subtree) {
  absl::StatusOr<std::vector<Hash>> tiles = Tiles(begin, count, subtree);
  if (!tiles.ok()) return tiles.status();
  return FoldTiles(*tiles);
}

// The RFC's split point of a node with count > 1 leaves: the largest power of two < count.
uint64_t SplitPoint(uint64_t count) { return std::bit_floor(count - 1); }

absl::StatusOr<Hash> CompleteSubtree(uint64_t begin, uint64_t width, SubtreeHashFn subtree) {
  const int level = std::countr_zero(width);
  return subtree(level, begin >> level);
}

absl::Status TooLong(const char* what) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " proof has more nodes than the tree sizes allow"));
}
absl::Status TooShort(const char* what) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " proof has fewer nodes than the tree sizes require"));
}

// In the RFC 9162 verification loops, after a left sibling was hashed in: a node that is
// the last of its level and a left child has no sibling there, so move up past those
// levels (a no-op when fn is a right child).
void SkipLevelsWithoutSibling(uint64_t& fn, uint64_t& sn) {
  while (fn != 0 && (fn & 1) == 0) {
    fn >>= 1;
    sn >>= 1;
  }
}

}  // namespace

Hash EmptyTreeHash() { return Sha256({}); }

Hash LeafHash(std::string_view leaf_bytes) {
  return Sha256({std::string_view("\x00", 1), leaf_bytes});
}

Hash NodeHash(const Hash& left, const Hash& right) {
  return Sha256({std::string_view("\x01", 1), Bytes(left), Bytes(right)});
}

absl::StatusOr<Hash> RootHash(uint64_t size, SubtreeHashFn subtree) {
  if (size == 0) return EmptyTreeHash();
  return RangeHash(0, size, subtree);
}

// Walks down from the root to the leaf, collecting the sibling of each node on the way
// (the RFC's PATH appends them on the way back up). Once the walk turns left it is inside
// a complete subtree, so only the first left turn can cost more than one subtree call.
absl::StatusOr<std::vector<Hash>> InclusionProof(uint64_t index, uint64_t size,
                                                 SubtreeHashFn subtree) {
  if (index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("inclusion proof: index ", index, " is not below tree size ", size));
  }
  std::vector<Hash> proof;
  uint64_t begin = 0, count = size;
  while (count > 1) {
    const uint64_t k = SplitPoint(count);
    absl::StatusOr<Hash> sibling;
    if (index < begin + k) {
      sibling = RangeHash(begin + k, count - k, subtree);
      count = k;
    } else {
      sibling = CompleteSubtree(begin, k, subtree);
      begin += k;
      count -= k;
    }
    if (!sibling.ok()) return sibling.status();
    proof.push_back(*sibling);
  }
  std::reverse(proof.begin(), proof.end());
  return proof;
}

// SUBPROOF(m, D[begin : begin + count], whole_old_tree), unrolled the same way: walk down
// while the old tree ends inside the node, collecting siblings; the node where it ends
// exactly contributes its own hash unless it is the whole old tree (the verifier has that).
absl::StatusOr<std::vector<Hash>> ConsistencyProof(uint64_t old_size, uint64_t new_size,
                                                   SubtreeHashFn subtree) {
  if (old_size > new_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("consistency proof: old size ", old_size, " is above new size ", new_size));
  }
  std::vector<Hash> proof;
  if (old_size == 0 || old_size == new_size) return proof;
  uint64_t begin = 0, count = new_size, m = old_size;
  bool whole_old_tree = true;
  while (m < count) {
    const uint64_t k = SplitPoint(count);
    absl::StatusOr<Hash> sibling;
    if (m <= k) {
      sibling = RangeHash(begin + k, count - k, subtree);
      count = k;
    } else {
      sibling = CompleteSubtree(begin, k, subtree);
      begin += k;
      count -= k;
      m -= k;
      whole_old_tree = false;
    }
    if (!sibling.ok()) return sibling.status();
    proof.push_back(*sibling);
  }
  if (!whole_old_tree) {
    absl::StatusOr<Hash> node = RangeHash(begin, count, subtree);
    if (!node.ok()) return node.status();
    proof.push_back(*node);
  }
  std::reverse(proof.begin(), proof.end());
  return proof;
}

// RFC 9162 2.1.3.2. fn is the index of the current node in its level, sn the index of
// the level's last node. The shape of the walk depends only on index and size, so a
// proof of the wrong length is caught before any hash is compared.
absl::Status VerifyInclusion(uint64_t index, uint64_t size, const Hash& leaf_hash,
                             absl::Span<const Hash> proof, const Hash& root) {
  if (index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("inclusion proof: index ", index, " is not below tree size ", size));
  }
  uint64_t fn = index, sn = size - 1;
  Hash r = leaf_hash;
  for (const Hash& p : proof) {
    if (sn == 0) return TooLong("inclusion");
    if ((fn & 1) == 1 || fn == sn) {
      r = NodeHash(p, r);
      SkipLevelsWithoutSibling(fn, sn);
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return TooShort("inclusion");
  if (r != root) return absl::FailedPreconditionError("inclusion proof: root mismatch");
  return absl::OkStatus();
}

// RFC 9162 2.1.4.2, plus the two cases it leaves out (old size 0 and equal sizes).
// fr rebuilds the old root and sr the new one from the same walk.
absl::Status VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                               const Hash& new_root, absl::Span<const Hash> proof) {
  if (old_size > new_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("consistency proof: old size ", old_size, " is above new size ", new_size));
  }
  if (old_size == 0 || old_size == new_size) {
    if (!proof.empty()) return TooLong("consistency");
    const Hash& expected = old_size == 0 ? EmptyTreeHash() : new_root;
    if (old_root != expected) {
      return absl::FailedPreconditionError("consistency proof: old root mismatch");
    }
    return absl::OkStatus();
  }
  // When the old tree is a complete subtree, the proof omits its hash: it is old_root.
  const bool old_is_complete = std::has_single_bit(old_size);
  if (proof.empty() && !old_is_complete) return TooShort("consistency");
  const Hash& first = old_is_complete ? old_root : proof.front();
  absl::Span<const Hash> rest = old_is_complete ? proof : proof.subspan(1);

  uint64_t fn = old_size - 1, sn = new_size - 1;
  while ((fn & 1) == 1) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = first, sr = first;
  for (const Hash& c : rest) {
    if (sn == 0) return TooLong("consistency");
    if ((fn & 1) == 1 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      SkipLevelsWithoutSibling(fn, sn);
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return TooShort("consistency");
  if (fr != old_root) return absl::FailedPreconditionError("consistency proof: old root mismatch");
  if (sr != new_root) return absl::FailedPreconditionError("consistency proof: new root mismatch");
  return absl::OkStatus();
}

absl::StatusOr<TreeBuilder> TreeBuilder::Restore(uint64_t size, SubtreeHashFn subtree) {
  absl::StatusOr<std::vector<Hash>> tiles = Tiles(0, size, subtree);
  if (!tiles.ok()) return tiles.status();
  TreeBuilder builder;
  builder.size_ = size;
  builder.edge_ = *std::move(tiles);
  return builder;
}

// Adding leaf number size_ completes one subtree per trailing one bit of size_: each
// merges the newest edge hash with the one before it, like a carry in binary addition.
std::vector<TreeBuilder::Node> TreeBuilder::Append(const Hash& leaf_hash) {
  std::vector<Node> completed = {{0, size_, leaf_hash}};
  Hash hash = leaf_hash;
  for (int level = 0; (size_ >> level & 1) == 1; ++level) {
    hash = NodeHash(edge_.back(), hash);
    edge_.pop_back();
    completed.push_back({level + 1, size_ >> (level + 1), hash});
  }
  edge_.push_back(hash);
  ++size_;
  return completed;
}

Hash TreeBuilder::Root() const { return edge_.empty() ? EmptyTreeHash() : FoldTiles(edge_); }

}  // namespace tellonce::certs
