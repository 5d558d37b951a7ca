// Fuzzes TransparencyService requests from their wire bytes to the answer, past the
// gRPC layer (authentication and roles are tested elsewhere): the checks the service
// makes and the transparency log's core over a real RocksDB (store_fixture.h).
// Byte 0 picks the RPC, the rest is its request:
//  0. ListAccessEvents: broker::ValidateListAccessEvents, then TransparencyLog::List;
//  1. GetInclusionProof: the proof must verify against the root of its tree size and
//     hold the stored event;
//  2. GetConsistencyProof: the proof must verify between the two roots;
//  3. ExportAccessLog: events from `start`, numbered without a gap, within the limits;
//  4. ExportCheckpoints: stored checkpoints of at least start_size, each verifying;
//  5. GetCheckpoint (latest): verifies.
// Refusals must be INVALID_ARGUMENT "<field>: <reason>".

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "broker/transparency_core.h"
#include "certs/merkle.h"
#include "cli/audit.h"
#include "tests/fuzz/request_checks.h"
#include "tests/fuzz/store_fixture.h"

namespace {

using tellonce::certs::Hash;
using tellonce::fuzz::TheStore;

Hash Root(uint64_t size) {
  absl::StatusOr<Hash> root = TheStore().tlog->RootAt(size);
  FUZZ_CHECK(root.ok());
  return *root;
}

std::vector<Hash> Hashes(const google::protobuf::RepeatedPtrField<std::string>& nodes) {
  std::vector<Hash> out;
  for (const std::string& node : nodes) {
    absl::StatusOr<Hash> h = tellonce::certs::HashFromBytes(node);
    FUZZ_CHECK(h.ok());
    out.push_back(*h);
  }
  return out;
}

void CheckRefused(const absl::Status& s) { tellonce::fuzz::CheckRefusal(s, ""); }

void CheckSigned(const tellonce::v1::SignedCheckpoint& c) {
  absl::StatusOr<tellonce::v1::Checkpoint> body =
      tellonce::cli::VerifyCheckpoint(c, tellonce::fuzz::BrokerKeySet(), tellonce::fuzz::kBrokerId);
  FUZZ_CHECK(body.ok());
  FUZZ_CHECK(tellonce::cli::ToTreeHead(*body)->root == Root(body->tree_size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tellonce::fuzz::Input in(data, size);
  const uint8_t rpc = in.Byte() % 6;
  const std::string_view bytes = in.Rest();
  const int n = static_cast<int>(bytes.size());
  tellonce::broker::TransparencyLog& log = *TheStore().tlog;
  const uint64_t tree_size = log.tree_size();
  FUZZ_CHECK(tree_size == static_cast<uint64_t>(tellonce::fuzz::kEvents));
  switch (rpc) {
    case 0: {
      tellonce::v1::ListAccessEventsRequest request;
      if (!request.ParseFromArray(bytes.data(), n)) return 0;
      absl::StatusOr<tellonce::broker::AccessEventsQuery> query =
          tellonce::broker::ValidateListAccessEvents(request, *tellonce::fuzz::SampleDirectory(),
                                                     tellonce::consent::RequestLimits());
      if (!query.ok()) {
        tellonce::fuzz::CheckRefusal(query.status(), request.citizen_id(), &request);
        return 0;
      }
      absl::StatusOr<tellonce::v1::ListAccessEventsResponse> page =
          log.List(request.citizen_id(), std::nullopt, query->from, query->to, query->page_size,
                   request.page_token());
      if (!page.ok()) {
        CheckRefused(page.status());
        return 0;
      }
      for (const tellonce::v1::LoggedAccessEvent& e : page->events()) {
        FUZZ_CHECK(e.event().citizen_id() == request.citizen_id());
        FUZZ_CHECK(e.index() < tree_size);
      }
      return 0;
    }
    case 1: {
      tellonce::v1::GetInclusionProofRequest request;
      if (!request.ParseFromArray(bytes.data(), n)) return 0;
      absl::StatusOr<tellonce::v1::GetInclusionProofResponse> proof =
          log.InclusionProof(request.index(), request.tree_size());
      if (!proof.ok()) {
        CheckRefused(proof.status());
        return 0;
      }
      FUZZ_CHECK(proof->index() == request.index());
      FUZZ_CHECK(proof->tree_size() <= tree_size && proof->index() < proof->tree_size());
      FUZZ_CHECK(request.tree_size() == 0 || proof->tree_size() == request.tree_size());
      FUZZ_CHECK(tellonce::certs::VerifyInclusion(proof->index(), proof->tree_size(),
                                                  tellonce::certs::LeafHash(proof->event_bytes()),
                                                  Hashes(proof->path()), Root(proof->tree_size()))
                     .ok());
      return 0;
    }
    case 2: {
      tellonce::v1::GetConsistencyProofRequest request;
      if (!request.ParseFromArray(bytes.data(), n)) return 0;
      absl::StatusOr<tellonce::v1::GetConsistencyProofResponse> proof =
          log.ConsistencyProof(request.old_size(), request.new_size());
      if (!proof.ok()) {
        CheckRefused(proof.status());
        return 0;
      }
      FUZZ_CHECK(proof->old_size() == request.old_size() &&
                 proof->new_size() == request.new_size());
      FUZZ_CHECK(tellonce::certs::VerifyConsistency(proof->old_size(), proof->new_size(),
                                                    Root(proof->old_size()),
                                                    Root(proof->new_size()), Hashes(proof->proof()))
                     .ok());
      return 0;
    }
    case 3: {
      tellonce::v1::ExportAccessLogRequest request;
      if (!request.ParseFromArray(bytes.data(), n)) return 0;
      absl::StatusOr<tellonce::v1::ExportAccessLogResponse> page =
          log.Export(request.start(), request.max_events(), request.max_bytes());
      if (!page.ok()) {
        CheckRefused(page.status());
        return 0;
      }
      FUZZ_CHECK(page->log_size() == tree_size);
      FUZZ_CHECK(page->events_size() <= 10000);
      if (request.start() < tree_size) FUZZ_CHECK(page->events_size() >= 1);
      size_t bytes_out = 0;
      for (int i = 0; i < page->events_size(); ++i) {
        const tellonce::v1::ExportedEvent& e = page->events(i);
        FUZZ_CHECK(e.index() == request.start() + static_cast<uint64_t>(i));
        FUZZ_CHECK(tellonce::certs::LeafHash(e.event_bytes()) ==
                   *tellonce::certs::HashFromBytes(e.leaf_hash()));
        bytes_out += e.ByteSizeLong();
      }
      FUZZ_CHECK(page->events_size() <= 1 || bytes_out <= 3u << 20);
      return 0;
    }
    case 4: {
      tellonce::v1::ExportCheckpointsRequest request;
      if (!request.ParseFromArray(bytes.data(), n)) return 0;
      absl::StatusOr<tellonce::v1::ExportCheckpointsResponse> page =
          log.ExportCheckpoints(request.start_size(), request.max_bytes());
      if (!page.ok()) {
        CheckRefused(page.status());
        return 0;
      }
      for (const tellonce::v1::SignedCheckpoint& c : page->checkpoints()) {
        CheckSigned(c);
        tellonce::v1::Checkpoint body;
        FUZZ_CHECK(body.ParseFromString(c.body()));
        FUZZ_CHECK(body.tree_size() >= request.start_size());
      }
      if (page->more()) FUZZ_CHECK(page->next_start_size() > request.start_size());
      return 0;
    }
    case 5: {
      absl::StatusOr<tellonce::v1::SignedCheckpoint> latest = log.LatestCheckpoint();
      FUZZ_CHECK(latest.ok());
      CheckSigned(*latest);
      return 0;
    }
  }
  return 0;
}
