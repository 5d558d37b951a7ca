#ifndef TELLONCE_CERTS_MERKLE_H_
#define TELLONCE_CERTS_MERKLE_H_

// Merkle trees of RFC 6962 section 2.1 (= RFC 9162 section 2.1) with SHA-256: tree
// hashes, inclusion and consistency proofs, their verification, and a builder for the
// right edge of an append-only tree.
//
// Proofs and roots are computed from complete subtrees only. In RFC 6962's recursion
// MTH(D[n]) = NodeHash(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two below n,
// the left part is always a complete subtree aligned to its start and the right part
// splits again; so every value a proof needs is a fold of O(log n) complete subtrees,
// which the caller supplies from storage (the broker keeps them in RocksDB).
//
// All functions are pure and thread-safe. Hashing is certs::Sha256 (sha256.h), which
// aborts the process if OpenSSL fails to compute a SHA-256 (only when memory runs out).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "certs/sha256.h"

namespace tellonce::certs {

// MTH of the empty tree: SHA-256 of the empty string.
Hash EmptyTreeHash();
// SHA-256(0x00 || leaf_bytes).
Hash LeafHash(std::string_view leaf_bytes);
// SHA-256(0x01 || left || right).
Hash NodeHash(const Hash& left, const Hash& right);
// Hash, HashToHex, HashToBytes and HashFromBytes are in sha256.h.

// Hash of the complete subtree at (level, index), which covers the leaves
// [index << level, (index + 1) << level); level 0 is a leaf hash. Supplied by the
// caller. The functions below only ask for subtrees that lie wholly inside the tree
// size they were given, and return any error of this function unchanged.
using SubtreeHashFn = absl::FunctionRef<absl::StatusOr<Hash>(int level, uint64_t index)>;

// MTH of the first `size` leaves (EmptyTreeHash() for 0), from at most popcount(size)
// calls of `subtree`.
absl::StatusOr<Hash> RootHash(uint64_t size, SubtreeHashFn subtree);

// RFC 6962 PATH(index, D[size]): the audit path of leaf `index`, leaf-to-root order.
// INVALID_ARGUMENT when index >= size. O(log size) calls of `subtree`.
absl::StatusOr<std::vector<Hash>> InclusionProof(uint64_t index, uint64_t size,
                                                 SubtreeHashFn subtree);

// RFC 6962 PROOF(old_size, D[new_size]). Empty when old_size == new_size or
// old_size == 0; INVALID_ARGUMENT when old_size > new_size. O(log new_size) calls.
absl::StatusOr<std::vector<Hash>> ConsistencyProof(uint64_t old_size, uint64_t new_size,
                                                   SubtreeHashFn subtree);

// Verification, by the algorithms of RFC 9162 2.1.3.2 and 2.1.4.2. Both return OK when
// the proof proves the claim, and otherwise:
//  - INVALID_ARGUMENT when the claim or the proof is malformed whatever the hashes:
//    index >= size, old_size > new_size, or a proof with too many or too few nodes
//    for the sizes (the number of nodes is fixed by the sizes and the index);
//  - FAILED_PRECONDITION "... root mismatch" when the proof has the right shape but
//    the hashes do not lead to the given root(s): a wrong leaf, index, proof node or
//    root. (A wrong size gives one of the two, depending on the proof length.)
// A proof binds the tree size only through the root (index 0 has the same proof shape in
// sizes 6 and 7): take size and root from the same signed tree head.

// Verifies that the leaf with hash `leaf_hash` is at `index` in the tree of `size`
// leaves whose root is `root`.
absl::Status VerifyInclusion(uint64_t index, uint64_t size, const Hash& leaf_hash,
                             absl::Span<const Hash> proof, const Hash& root);

// Verifies that the tree of `old_size` leaves with root `old_root` is a prefix of the
// tree of `new_size` leaves with root `new_root`. When old_size == new_size the proof
// must be empty and the roots equal; when old_size == 0 the proof must be empty and
// old_root must be EmptyTreeHash() (every tree extends the empty one).
absl::Status VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                               const Hash& new_root, absl::Span<const Hash> proof);

// The right edge of a growing tree (a "compact range"): the hashes of the complete
// subtrees that tile [0, size), one per set bit of size, largest first; O(log n) hashes.
// Append reports each complete subtree it finishes, so the caller can store it and later
// serve SubtreeHashFn from storage; Restore rebuilds the edge from such storage.
// A value type; not thread-safe for concurrent mutation.
class TreeBuilder {
 public:
  TreeBuilder() = default;

  // The builder after `size` appends, from the stored subtrees (popcount(size) calls).
  // Errors of `subtree` are returned unchanged.
  static absl::StatusOr<TreeBuilder> Restore(uint64_t size, SubtreeHashFn subtree);

  struct Node {
    int level;
    uint64_t index;
    Hash hash;
  };

  // Appends one leaf hash (see LeafHash) as leaf number size(). Returns the complete
  // subtrees this append finished: the leaf itself (level 0) first, then upwards, each
  // at most once over the life of the tree.
  std::vector<Node> Append(const Hash& leaf_hash);

  uint64_t size() const { return size_; }

  // MTH of everything appended so far; EmptyTreeHash() for size 0.
  Hash Root() const;

 private:
  uint64_t size_ = 0;
  std::vector<Hash> edge_;  // One per set bit of size_, from the highest bit down.
};

}  // namespace tellonce::certs

#endif  // TELLONCE_CERTS_MERKLE_H_
