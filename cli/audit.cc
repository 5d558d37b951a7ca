#include "cli/audit.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "certs/signed_messages.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/util/delimited_message_util.h"
#include "storage/rocksdb/rocks_storage.h"

namespace tellonce::cli {
namespace {

using certs::Hash;

// MTH of `leaves` (EmptyTreeHash() when empty).
Hash TreeRoot(const std::vector<Hash>& leaves) {
  certs::TreeBuilder builder;
  for (const Hash& leaf : leaves) builder.Append(leaf);
  return builder.Root();
}

std::string Range(uint64_t from, uint64_t to) {
  return to == from + 1 ? absl::StrCat(from) : absl::StrCat(from, "..", to - 1);
}

struct Finding {
  uint64_t index;
  std::string reason;
};

// Keeps the finding with the smallest index (the first one given among equals).
void Keep(std::optional<Finding>* best, uint64_t index, std::string reason) {
  if (!best->has_value() || index < (*best)->index) *best = Finding{index, std::move(reason)};
}

LogVerdict Failed(const Finding& finding, uint64_t tree_size, uint64_t uncovered) {
  LogVerdict v;
  v.tree_size = tree_size;
  v.uncovered = uncovered;
  v.first_bad = finding.index;
  v.bad_from = finding.index;
  v.bad_to = finding.index + 1;
  v.reason = finding.reason;
  return v;
}

}  // namespace

std::string LogVerdict::Summary() const {
  if (ok) {
    return absl::StrCat("OK: ", tree_size, " events verified against checkpoint of size ",
                        tree_size);
  }
  if (first_bad.has_value())
    return absl::StrCat("FAILED: first bad index ", *first_bad, ": ", reason);
  if (bad_to > bad_from) {
    return absl::StrCat("FAILED: first bad index in ", Range(bad_from, bad_to), ": ", reason);
  }
  return absl::StrCat("FAILED: ", reason);
}

LogVerdict VerifyLog(const LogCopy& log, const TreeHead& checkpoint,
                     const std::vector<TreeHead>& other_checkpoints) {
  const uint64_t size = checkpoint.size;

  // Events by position, and anything wrong with their numbering.
  std::vector<const StoredEvent*> events(size, nullptr);
  std::optional<Finding> numbering;
  uint64_t uncovered = 0;
  uint64_t next = 0;
  for (const StoredEvent& e : log.events) {
    if (e.index < next) {
      // Out of order beyond the checkpoint: not covered by it, like any later event
      // (found by tests/fuzz/audit_log_fuzz.cc: it failed the check at an index the
      // checkpoint does not cover).
      if (e.index >= size) {
        ++uncovered;
        continue;
      }
      Keep(&numbering, e.index, "event recorded twice or out of order");
      continue;
    }
    next = e.index + 1;
    if (e.index >= size) {
      ++uncovered;
    } else {
      events[e.index] = &e;
    }
  }
  std::optional<uint64_t> first_gap;
  for (uint64_t i = 0; i < size; ++i) {
    if (events[i] == nullptr) {
      first_gap = i;
      break;
    }
  }

  // E[i]: the hash of what is stored; L[i]: the leaf hash stored beside it.
  std::vector<Hash> computed(size);
  for (uint64_t i = 0; i < size; ++i) {
    if (events[i] != nullptr) computed[i] = certs::LeafHash(events[i]->bytes);
  }
  std::vector<std::optional<Hash>> stored(size);
  for (const StoredSubtree& s : log.subtrees) {
    if (s.level == 0 && s.index < size && !stored[s.index].has_value()) stored[s.index] = s.hash;
  }
  const bool stored_complete =
      std::all_of(stored.begin(), stored.end(), [](const auto& h) { return h.has_value(); });

  std::vector<Hash> stored_leaves;
  if (stored_complete) {
    stored_leaves.reserve(size);
    for (const auto& h : stored) stored_leaves.push_back(*h);
  }

  // Case 1: the stored leaf hashes are what the broker signed. Every event must hash to
  // its leaf; the stored interior subtrees (what proofs are served from) must match too.
  if (stored_complete && TreeRoot(stored_leaves) == checkpoint.root) {
    absl::flat_hash_map<Hash, uint64_t> signed_position;
    for (uint64_t i = 0; i < size; ++i) signed_position.emplace(stored_leaves[i], i);
    std::optional<Finding> bad = numbering;
    for (uint64_t i = 0; i < size; ++i) {
      if (bad.has_value() && bad->index <= i) break;
      if (events[i] == nullptr) {
        Keep(&bad, i, "event missing (the signed tree has a leaf there)");
      } else if (computed[i] != stored_leaves[i]) {
        auto it = signed_position.find(computed[i]);
        Keep(&bad, i,
             it != signed_position.end()
                 ? absl::StrCat("holds the event signed at index ", it->second,
                                " (events moved or swapped)")
                 : std::string("event bytes do not match the signed leaf hash (altered)"));
      }
    }
    if (bad.has_value()) return Failed(*bad, size, uncovered);

    // Interior subtrees, level by level from the leaves.
    std::map<std::pair<uint64_t, int>, const StoredSubtree*> interior;  // by (start, level)
    for (const StoredSubtree& s : log.subtrees) {
      if (s.level >= 1 && s.level < 64 && s.index < (size >> s.level)) {
        interior.emplace(std::make_pair(s.index << s.level, s.level), &s);
      }
    }
    if (!interior.empty()) {
      std::vector<std::vector<Hash>> levels = {stored_leaves};
      while (levels.back().size() >= 2) {
        const std::vector<Hash>& below = levels.back();
        std::vector<Hash> above(below.size() / 2);
        for (size_t j = 0; j < above.size(); ++j) {
          above[j] = certs::NodeHash(below[2 * j], below[2 * j + 1]);
        }
        levels.push_back(std::move(above));
      }
      for (const auto& [key, s] : interior) {
        if (levels[s->level][s->index] != s->hash) {
          const uint64_t from = key.first;
          const uint64_t to = from + (uint64_t{1} << s->level);
          return Failed({from, absl::StrCat("stored subtree hash at level ", s->level,
                                            " over events ", Range(from, to),
                                            " does not match their leaves (stored Merkle tree "
                                            "damaged; the events are intact, but proofs served "
                                            "from it would fail)")},
                        size, uncovered);
        }
      }
    }
    LogVerdict v;
    v.ok = true;
    v.tree_size = size;
    v.uncovered = uncovered;
    return v;
  }

  // Case 2: the events are what the broker signed; the stored tree is not.
  if (!first_gap.has_value() && TreeRoot(computed) == checkpoint.root) {
    for (uint64_t i = 0; i < size; ++i) {
      if (!stored[i].has_value() || *stored[i] != computed[i]) {
        return Failed({i, absl::StrCat(stored[i].has_value() ? "stored leaf hash does not match "
                                                               "the event"
                                                             : "stored leaf hash missing",
                                       "; the events match the signed root, so the stored "
                                       "Merkle tree is damaged (the events are intact)")},
                      size, uncovered);
      }
    }
    // Unreachable: with every stored leaf equal to its event, case 1 would have held.
    return Failed({0, "stored Merkle tree damaged"}, size, uncovered);
  }

  // Case 3: neither reproduces the signed root. The first place where the copy
  // contradicts itself is the first bad index.
  constexpr char kNeither[] =
      " (neither the events nor the stored leaf hashes reproduce "
      "the signed root)";
  std::optional<Finding> bad = numbering;
  if (first_gap.has_value()) Keep(&bad, *first_gap, absl::StrCat("event missing", kNeither));
  for (uint64_t i = 0; i < size; ++i) {
    if (bad.has_value() && bad->index <= i) break;
    if (events[i] == nullptr) continue;
    if (!stored[i].has_value()) {
      Keep(&bad, i, absl::StrCat("stored leaf hash missing", kNeither));
    } else if (*stored[i] != computed[i]) {
      Keep(&bad, i, absl::StrCat("event bytes do not match the stored leaf hash", kNeither));
    }
  }
  if (bad.has_value()) return Failed(*bad, size, uncovered);

  // The events and the stored hashes agree with each other but not with the signed
  // root: rewritten together. The other signed checkpoints narrow down where.
  LogVerdict v;
  v.tree_size = size;
  v.uncovered = uncovered;
  v.reason =
      "the events and their stored hashes agree with each other but not with the signed "
      "root (rewritten together)";
  if (size == 0) {
    v.reason = "a checkpoint of size 0 must have the empty tree's root";
    return v;
  }
  std::vector<TreeHead> heads;
  for (const TreeHead& h : other_checkpoints) {
    if (h.size > 0 && h.size < size) heads.push_back(h);
  }
  std::sort(heads.begin(), heads.end(),
            [](const TreeHead& a, const TreeHead& b) { return a.size < b.size; });
  uint64_t good = 0;
  uint64_t first_failing = size;
  certs::TreeBuilder prefix;
  for (const TreeHead& h : heads) {
    while (prefix.size() < h.size) prefix.Append(computed[prefix.size()]);
    if (prefix.Root() == h.root) {
      good = h.size;
    } else {
      first_failing = h.size;
      break;
    }
  }
  v.bad_from = good;
  v.bad_to = first_failing;
  if (first_failing == good + 1) v.first_bad = good;
  absl::StrAppend(&v.reason, "; events before ", good,
                  good > 0 ? " match an earlier signed checkpoint" : " are not in question",
                  first_failing < size ? absl::StrCat(", the signed checkpoint of size ",
                                                      first_failing, " no longer matches")
                                       : std::string());
  return v;
}

absl::StatusOr<tellonce::v1::Checkpoint> VerifyCheckpoint(
    const tellonce::v1::SignedCheckpoint& signed_checkpoint, const certs::VerifyingKeySet& keys,
    const std::string& issuer) {
  absl::StatusOr<tellonce::v1::Checkpoint> verified =
      certs::VerifyCheckpoint(signed_checkpoint, keys);
  if (!verified.ok()) {
    return absl::Status(verified.status().code(),
                        absl::StrCat("checkpoint: ", verified.status().message()));
  }
  const tellonce::v1::Checkpoint& checkpoint = *verified;
  if (checkpoint.issuer() != issuer) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint issued by \"", checkpoint.issuer(),
                                                   "\", but the certificate given is ", issuer));
  }
  if (checkpoint.root_hash().size() != 32) {
    return absl::InvalidArgumentError("checkpoint root_hash: must be 32 bytes");
  }
  return checkpoint;
}

absl::StatusOr<TreeHead> ToTreeHead(const tellonce::v1::Checkpoint& checkpoint) {
  absl::StatusOr<Hash> root = certs::HashFromBytes(checkpoint.root_hash());
  if (!root.ok()) return root.status();
  return TreeHead{checkpoint.tree_size(), *root};
}

// --- Data directory -------------------------------------------------------------------

absl::StatusOr<LogCopy> ReadDataDirectory(const std::string& path) {
  return storage::ReadRocksLogCopy(path);
}

// --- Export files ---------------------------------------------------------------------

struct ExportWriter::Impl {
  std::string path;
  std::string staging_path;
  std::ofstream staging;
  std::unique_ptr<google::protobuf::io::OstreamOutputStream> stream;
  uint64_t count = 0;
  bool finished = false;

  ~Impl() {
    stream.reset();
    if (staging.is_open()) staging.close();
    if (!finished) std::remove(staging_path.c_str());
  }
};

ExportWriter::ExportWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ExportWriter::ExportWriter(ExportWriter&&) noexcept = default;
ExportWriter& ExportWriter::operator=(ExportWriter&&) noexcept = default;
ExportWriter::~ExportWriter() = default;

absl::StatusOr<ExportWriter> ExportWriter::Create(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->staging_path = path + ".partial";
  impl->staging.open(impl->staging_path, std::ios::binary | std::ios::trunc);
  if (!impl->staging) {
    return absl::NotFoundError(absl::StrCat(impl->staging_path, ": cannot create"));
  }
  impl->stream = std::make_unique<google::protobuf::io::OstreamOutputStream>(&impl->staging);
  return ExportWriter(std::move(impl));
}

absl::Status ExportWriter::Add(const tellonce::v1::ExportedEvent& event) {
  if (!google::protobuf::util::SerializeDelimitedToZeroCopyStream(event, impl_->stream.get())) {
    return absl::InternalError(absl::StrCat(impl_->staging_path, ": cannot write"));
  }
  ++impl_->count;
  return absl::OkStatus();
}

uint64_t ExportWriter::count() const { return impl_->count; }

absl::Status ExportWriter::Finish(tellonce::v1::AccessLogExportHeader header) {
  impl_->stream.reset();  // flushes into the staging file
  impl_->staging.close();
  if (!impl_->staging) {
    return absl::InternalError(absl::StrCat(impl_->staging_path, ": cannot write"));
  }
  header.set_format(kExportFormat);
  header.set_log_size(impl_->count);
  std::ofstream out(impl_->path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::NotFoundError(absl::StrCat(impl_->path, ": cannot create"));
  {
    google::protobuf::io::OstreamOutputStream stream(&out);
    if (!google::protobuf::util::SerializeDelimitedToZeroCopyStream(header, &stream)) {
      return absl::InternalError(absl::StrCat(impl_->path, ": cannot write"));
    }
  }
  std::ifstream staged(impl_->staging_path, std::ios::binary);
  if (impl_->count > 0) out << staged.rdbuf();
  out.close();
  if (!out || !staged) return absl::InternalError(absl::StrCat(impl_->path, ": cannot write"));
  staged.close();
  std::remove(impl_->staging_path.c_str());
  impl_->finished = true;
  return absl::OkStatus();
}

absl::Status WriteExportFile(const std::string& path, const LogCopy& log) {
  absl::StatusOr<ExportWriter> writer = ExportWriter::Create(path);
  if (!writer.ok()) return writer.status();
  absl::flat_hash_map<uint64_t, const Hash*> leaves;
  for (const StoredSubtree& s : log.subtrees) {
    if (s.level == 0) leaves.emplace(s.index, &s.hash);
  }
  for (const StoredEvent& e : log.events) {
    tellonce::v1::ExportedEvent exported;
    exported.set_index(e.index);
    exported.set_event_bytes(e.bytes);
    if (auto it = leaves.find(e.index); it != leaves.end()) {
      exported.set_leaf_hash(std::string(it->second->begin(), it->second->end()));
    }
    if (absl::Status s = writer->Add(exported); !s.ok()) return s;
  }
  tellonce::v1::AccessLogExportHeader header;
  for (const tellonce::v1::SignedCheckpoint& c : log.checkpoints) *header.add_checkpoints() = c;
  return writer->Finish(std::move(header));
}

absl::StatusOr<LogCopy> ReadExportFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  google::protobuf::io::IstreamInputStream stream(&file);
  tellonce::v1::AccessLogExportHeader header;
  bool clean_eof = false;
  if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(&header, &stream, &clean_eof) ||
      header.format() != kExportFormat) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an access log export (", kExportFormat, ")"));
  }
  LogCopy copy;
  copy.claimed_size = header.log_size();
  copy.checkpoints.assign(header.checkpoints().begin(), header.checkpoints().end());
  for (uint64_t record = 1;; ++record) {
    tellonce::v1::ExportedEvent event;
    if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(&event, &stream, &clean_eof)) {
      if (clean_eof) break;
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": record ", record, " is truncated or unreadable"));
    }
    copy.events.push_back({event.index(), std::move(*event.mutable_event_bytes())});
    // A leaf hash of the wrong length counts as absent; VerifyLog reports it.
    if (absl::StatusOr<Hash> leaf = certs::HashFromBytes(event.leaf_hash()); leaf.ok()) {
      copy.subtrees.push_back({0, event.index(), *leaf});
    }
  }
  return copy;
}

}  // namespace tellonce::cli
