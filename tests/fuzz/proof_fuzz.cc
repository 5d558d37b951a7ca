// Fuzzes Merkle proof verification (certs::VerifyInclusion, certs::VerifyConsistency),
// what `tellonce audit prove` and the portal run on proofs a broker hands out:
//  0. arbitrary claims: index/sizes, leaf hash, roots and proof nodes all from the input;
//     only OK, INVALID_ARGUMENT or FAILED_PRECONDITION may come back, and OK only for a
//     proof of the right length;
//  1. differential: a tree of n leaves (n, the leaves and the positions from the input)
//     is built with certs::TreeBuilder; the proofs certs::InclusionProof and
//     certs::ConsistencyProof make from its stored subtrees must verify, and must stop
//     verifying when one bit of a proof node, the leaf or a root is flipped.
// The first byte picks the mode.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certs/merkle.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using tellonce::certs::Hash;

Hash ReadHash(tellonce::fuzz::Input& in) {
  Hash h{};
  for (unsigned char& b : h) b = in.Byte();
  return h;
}

void CheckVerdict(const absl::Status& s) {
  FUZZ_CHECK(s.ok() || s.code() == absl::StatusCode::kInvalidArgument ||
             s.code() == absl::StatusCode::kFailedPrecondition);
}

void Arbitrary(tellonce::fuzz::Input& in) {
  const bool consistency = in.Bool();
  const uint64_t a = in.Integer<uint64_t>();
  const uint64_t b = in.Integer<uint64_t>();
  const Hash h1 = ReadHash(in);
  const Hash h2 = ReadHash(in);
  std::vector<Hash> proof;
  while (in.remaining() > 0 && proof.size() < 130) proof.push_back(ReadHash(in));
  if (consistency) {
    CheckVerdict(tellonce::certs::VerifyConsistency(a, b, h1, h2, proof));
  } else {
    absl::Status s = tellonce::certs::VerifyInclusion(a, b, h1, proof, h2);
    CheckVerdict(s);
    if (s.ok()) FUZZ_CHECK(a < b && proof.size() <= 64);
  }
}

void Differential(tellonce::fuzz::Input& in) {
  const uint64_t n = 1 + in.Integer<uint16_t>() % 300;
  const std::string salt = in.String(16);
  std::map<std::pair<int, uint64_t>, Hash> stored;
  tellonce::certs::TreeBuilder builder;
  std::vector<Hash> roots = {builder.Root()};  // roots[k]: root of the first k leaves
  for (uint64_t i = 0; i < n; ++i) {
    for (const auto& node : builder.Append(tellonce::certs::LeafHash(absl::StrCat(salt, i)))) {
      stored[{node.level, node.index}] = node.hash;
    }
    roots.push_back(builder.Root());
  }
  auto subtree = [&](int level, uint64_t index) -> absl::StatusOr<Hash> {
    auto it = stored.find({level, index});
    if (it == stored.end()) return absl::NotFoundError("no such subtree");
    return it->second;
  };
  const uint64_t index = in.Integer<uint16_t>() % n;
  const uint64_t size = index + 1 + in.Integer<uint16_t>() % (n - index);
  const uint64_t old_size = in.Integer<uint16_t>() % (size + 1);
  const unsigned flip = in.Integer<uint16_t>();

  // The root of any size from the stored subtrees matches the builder's.
  absl::StatusOr<Hash> root = tellonce::certs::RootHash(size, subtree);
  FUZZ_CHECK(root.ok() && *root == roots[size]);

  const Hash leaf = tellonce::certs::LeafHash(absl::StrCat(salt, index));
  absl::StatusOr<std::vector<Hash>> path = tellonce::certs::InclusionProof(index, size, subtree);
  FUZZ_CHECK(path.ok());
  FUZZ_CHECK(tellonce::certs::VerifyInclusion(index, size, leaf, *path, roots[size]).ok());
  // One flipped bit anywhere (a proof node, the leaf, the root) and it must fail.
  {
    std::vector<Hash> p = *path;
    Hash l = leaf;
    Hash r = roots[size];
    const size_t where = flip % (p.size() + 2);
    const unsigned bit = (flip / 7) % 256;
    Hash& target = where < p.size() ? p[where] : (where == p.size() ? l : r);
    target[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    FUZZ_CHECK(!tellonce::certs::VerifyInclusion(index, size, l, p, r).ok());
  }

  absl::StatusOr<std::vector<Hash>> consistency =
      tellonce::certs::ConsistencyProof(old_size, size, subtree);
  FUZZ_CHECK(consistency.ok());
  FUZZ_CHECK(
      tellonce::certs::VerifyConsistency(old_size, size, roots[old_size], roots[size], *consistency)
          .ok());
  if (old_size > 0 && old_size < size) {
    std::vector<Hash> p = *consistency;
    Hash r_old = roots[old_size];
    Hash r_new = roots[size];
    const size_t where = flip % (p.size() + 2);
    const unsigned bit = (flip / 7) % 256;
    Hash& target = where < p.size() ? p[where] : (where == p.size() ? r_old : r_new);
    target[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    FUZZ_CHECK(!tellonce::certs::VerifyConsistency(old_size, size, r_old, r_new, p).ok());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tellonce::fuzz::Input in(data, size);
  if (in.Byte() % 2 == 0) {
    Arbitrary(in);
  } else {
    Differential(in);
  }
  return 0;
}
