// `tellonce access list` and `tellonce audit checkpoint|prove|export|verify`: a
// citizen's access history and the access log's signed checkpoints and proofs
// (TransparencyService), and offline verification of a copy of the log (audit.h).

#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "certs/identity.h"
#include "certs/merkle.h"
#include "certs/signing.h"
#include "cli/audit.h"
#include "cli/call.h"
#include "cli/command.h"
#include "proto/textproto.h"
#include "proto/time.h"
#include "tellonce/v1/transparency.grpc.pb.h"

namespace tellonce::cli {
namespace {

using tellonce::v1::TransparencyService;

// What a refusal code means, in words a citizen understands.
std::string DescribeCode(tellonce::v1::ResultCode code) {
  switch (code) {
    case tellonce::v1::RESULT_OK:
      return "delivered";
    case tellonce::v1::RESULT_NO_BASIS:
      return "refused: no consent or law allows it";
    case tellonce::v1::RESULT_CONSENT_REVOKED:
      return "refused: the consent was revoked";
    case tellonce::v1::RESULT_CONSENT_EXPIRED:
      return "refused: the consent had expired";
    case tellonce::v1::RESULT_WRONG_PURPOSE:
      return "refused: the consent is for another purpose";
    case tellonce::v1::RESULT_UNKNOWN_ATTRIBUTE:
      return "refused: no such kind of data";
    case tellonce::v1::RESULT_PROVIDER_UNAVAILABLE:
      return "not delivered: the source was unreachable";
    case tellonce::v1::RESULT_NOT_FOUND:
      return "not delivered: the source holds no such record";
    case tellonce::v1::RESULT_DEADLINE_EXCEEDED:
      return "not delivered: the source answered too late";
    case tellonce::v1::RESULT_PROVIDER_ERROR:
      return "not delivered: the source answered wrongly";
    case tellonce::v1::RESULT_CONSENT_USED:
      return "refused: the one-time consent was already used";
    default:
      return "unknown outcome";
  }
}

void PrintAccessEvent(uint64_t index, const tellonce::v1::AccessEvent& e) {
  const bool allowed = e.outcome() == tellonce::v1::AccessEvent::ALLOWED;
  std::cout << "event " << index << "  " << FormatTime(e.at()) << "  "
            << (allowed ? "ALLOWED" : "DENIED") << "\n"
            << "  consumer    " << e.consumer() << "\n"
            << "  provider    " << (e.provider().empty() ? "-" : e.provider()) << "\n"
            << "  attributes  " << absl::StrJoin(e.attributes(), ", ") << "\n"
            << "  purpose     " << e.purpose() << "\n"
            << "  basis       " << FormatBasis(e.basis()) << "\n"
            << "  outcome     " << tellonce::v1::AccessEvent::Outcome_Name(e.outcome()) << ", "
            << DescribeCode(e.code()) << " (" << tellonce::v1::ResultCode_Name(e.code()) << ")\n"
            << "  exchange    " << e.exchange_id() << "\n";
}

int ListAccess(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"citizen"}); !s.ok()) return Fail(s);
  tellonce::v1::ListAccessEventsRequest request;
  request.set_citizen_id(args.Get("citizen"));
  if (args.Has("from")) {
    absl::StatusOr<absl::Time> t = ParseTimeFlag("from", args.Get("from"));
    if (!t.ok()) return Fail(t.status());
    *request.mutable_from() = ToProtoTime(*t);
  }
  if (args.Has("to")) {
    absl::StatusOr<absl::Time> t = ParseTimeFlag("to", args.Get("to"));
    if (!t.ok()) return Fail(t.status());
    *request.mutable_to() = ToProtoTime(*t);
  }
  absl::StatusOr<std::string> assertion = CitizenAssertionFor(args, request.citizen_id());
  if (!assertion.ok()) return Fail(assertion.status());
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  std::unique_ptr<TransparencyService::Stub> stub = TransparencyService::NewStub(conn->channel);
  return ListPages<tellonce::v1::ListAccessEventsResponse>(
      args, *conn, request,
      [&](grpc::ClientContext* context, const auto& r, auto* response) {
        AddCitizenAssertion(context, *assertion);
        return stub->ListAccessEvents(context, r, response);
      },
      [](const tellonce::v1::ListAccessEventsResponse& response) {
        for (const tellonce::v1::LoggedAccessEvent& e : response.events()) {
          PrintAccessEvent(e.index(), e.event());
        }
        return response.events_size();
      },
      "access event(s)");
}

// The broker's public signing keys (--signing-keys) and SPIFFE id (--broker-cert).
struct BrokerKey {
  certs::VerifyingKeySet key;
  std::string issuer;
};

absl::StatusOr<BrokerKey> LoadBrokerKey(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"broker-cert"}); !s.ok()) return s;
  absl::StatusOr<std::string> pem = ReadFileToString(args.Get("broker-cert"));
  if (!pem.ok()) return pem.status();
  absl::StatusOr<certs::VerifyingKeySet> key = LoadSigningKeys(args);
  if (!key.ok()) return key.status();
  absl::StatusOr<certs::SpiffeId> id = certs::CertificateSpiffeId(*pem);
  if (!id.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--broker-cert: ", id.status().message()));
  }
  if (!id->is_broker) {
    return absl::InvalidArgumentError(
        absl::StrCat("--broker-cert: ", id->ToString(), " is not a broker certificate"));
  }
  return BrokerKey{*std::move(key), id->ToString()};
}

// A signed checkpoint saved by `audit checkpoint`, its signature verified.
struct VerifiedCheckpoint {
  tellonce::v1::SignedCheckpoint signed_checkpoint;
  tellonce::v1::Checkpoint checkpoint;
  TreeHead head;
};

absl::StatusOr<VerifiedCheckpoint> ReadCheckpointFile(const std::string& flag,
                                                      const std::string& path,
                                                      const BrokerKey& broker) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  VerifiedCheckpoint v;
  if (!v.signed_checkpoint.ParseFromString(*bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", path, ": not a signed checkpoint"));
  }
  absl::StatusOr<tellonce::v1::Checkpoint> checkpoint =
      VerifyCheckpoint(v.signed_checkpoint, broker.key, broker.issuer);
  if (!checkpoint.ok()) {
    return absl::Status(checkpoint.status().code(),
                        absl::StrCat("--", flag, " ", path, ": ", checkpoint.status().message()));
  }
  v.checkpoint = *std::move(checkpoint);
  absl::StatusOr<TreeHead> head = ToTreeHead(v.checkpoint);
  if (!head.ok()) return head.status();
  v.head = *head;
  return v;
}

std::string RootHex(const tellonce::v1::Checkpoint& c) {
  absl::StatusOr<certs::Hash> root = certs::HashFromBytes(c.root_hash());
  return root.ok() ? certs::HashToHex(*root) : "(malformed)";
}

// For a check that did not pass: "FAILED: ..." on stdout (with --json,
// {"ok": false, "reason": ...}), exit 1.
int Failed(const Args& args, const std::string& what) {
  if (args.json()) {
    JsonObject().Add("ok", false).Add("reason", what).Print();
  } else {
    std::cout << "FAILED: " << what << "\n";
  }
  return kExitFailed;
}

// A checkpoint file that could not be used: a signature that does not verify is a
// failed check; anything else (unreadable file, wrong issuer) an error.
int CheckpointFailure(const Args& args, const absl::Status& status) {
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    return Failed(args, std::string(status.message()));
  }
  return Fail(status);
}

int AuditCheckpoint(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"out", "broker-cert"}); !s.ok()) return Fail(s);
  absl::StatusOr<BrokerKey> broker = LoadBrokerKey(args);
  if (!broker.ok()) return Fail(broker.status());
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  tellonce::v1::GetCheckpointRequest request;
  request.set_fresh(args.Has("fresh"));
  tellonce::v1::GetCheckpointResponse response;
  if (!Call(*conn, [&](grpc::ClientContext* context) {
        return TransparencyService::NewStub(conn->channel)
            ->GetCheckpoint(context, request, &response);
      })) {
    return kExitFailed;
  }
  absl::StatusOr<tellonce::v1::Checkpoint> checkpoint =
      VerifyCheckpoint(response.checkpoint(), broker->key, broker->issuer);
  if (!checkpoint.ok()) return Failed(args, std::string(checkpoint.status().message()));
  std::ofstream out(args.Get("out"), std::ios::binary | std::ios::trunc);
  out << response.checkpoint().SerializeAsString();
  out.close();
  if (!out) return Fail(absl::InternalError(absl::StrCat(args.Get("out"), ": cannot write")));
  if (args.json()) {
    PrintJson(*checkpoint);
    return kExitOk;
  }
  std::cout << "checkpoint OK: signed by " << checkpoint->issuer() << " at "
            << FormatTime(checkpoint->signed_at()) << "\n"
            << "size " << checkpoint->tree_size() << "\n"
            << "root " << RootHex(*checkpoint) << "\n"
            << "saved to " << args.Get("out") << "\n";
  return kExitOk;
}

int ProveInclusion(const Args& args, const BrokerKey& broker) {
  if (absl::Status s = RequireFlags(args, {"index", "checkpoint"}); !s.ok()) return Fail(s);
  uint64_t index = 0;
  if (!absl::SimpleAtoi(args.Get("index"), &index)) {
    return Fail(absl::InvalidArgumentError("--index: must be a non-negative number"));
  }
  absl::StatusOr<VerifiedCheckpoint> cp =
      ReadCheckpointFile("checkpoint", args.Get("checkpoint"), broker);
  if (!cp.ok()) return CheckpointFailure(args, cp.status());
  if (index >= cp->head.size) {
    return Failed(args, absl::StrCat("index ", index, " is not covered by the checkpoint (size ",
                                     cp->head.size, ")"));
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  tellonce::v1::GetInclusionProofRequest request;
  request.set_index(index);
  request.set_tree_size(cp->head.size);
  tellonce::v1::GetInclusionProofResponse response;
  if (!Call(*conn, [&](grpc::ClientContext* context) {
        return TransparencyService::NewStub(conn->channel)
            ->GetInclusionProof(context, request, &response);
      })) {
    return kExitFailed;
  }
  if (response.index() != index || response.tree_size() != cp->head.size) {
    return Failed(args, absl::StrCat("the broker answered for index ", response.index(),
                                     " in a tree of size ", response.tree_size()));
  }
  std::vector<certs::Hash> path;
  for (const std::string& node : response.path()) {
    absl::StatusOr<certs::Hash> h = certs::HashFromBytes(node);
    if (!h.ok()) return Failed(args, "the proof holds a node that is not 32 bytes");
    path.push_back(*h);
  }
  absl::Status verified = certs::VerifyInclusion(
      index, cp->head.size, certs::LeafHash(response.event_bytes()), path, cp->head.root);
  if (!verified.ok()) {
    return Failed(args, absl::StrCat("event ", index, " is not proven in the log of size ",
                                     cp->head.size, ": ", verified.message()));
  }
  tellonce::v1::AccessEvent event;
  const bool parsed = event.ParseFromString(response.event_bytes());
  if (args.json()) {
    JsonObject result;
    result.Add("ok", true)
        .Add("index", index)
        .Add("tree_size", cp->head.size)
        .Add("root", certs::HashToHex(cp->head.root))
        .Add("signed_at", FormatTime(cp->checkpoint.signed_at()));
    if (parsed) result.AddRaw("event", MessageJson(event));
    result.Print();
    return kExitOk;
  }
  std::cout << "OK: event " << index << " is in the log of size " << cp->head.size << " signed at "
            << FormatTime(cp->checkpoint.signed_at()) << " (root "
            << certs::HashToHex(cp->head.root) << ")\n";
  if (parsed) PrintAccessEvent(index, event);
  return kExitOk;
}

int ProveConsistency(const Args& args, const BrokerKey& broker) {
  if (absl::Status s = RequireFlags(args, {"old", "new"}); !s.ok()) return Fail(s);
  absl::StatusOr<VerifiedCheckpoint> old_cp = ReadCheckpointFile("old", args.Get("old"), broker);
  if (!old_cp.ok()) return CheckpointFailure(args, old_cp.status());
  absl::StatusOr<VerifiedCheckpoint> new_cp = ReadCheckpointFile("new", args.Get("new"), broker);
  if (!new_cp.ok()) return CheckpointFailure(args, new_cp.status());
  const uint64_t old_size = old_cp->head.size;
  const uint64_t new_size = new_cp->head.size;
  if (old_size > new_size) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--old has size ", old_size, ", larger than --new (", new_size, "): swap them")));
  }
  std::vector<certs::Hash> proof;
  if (old_size != 0 && old_size != new_size) {
    absl::StatusOr<Connection> conn = Connect(args);
    if (!conn.ok()) return Fail(conn.status());
    tellonce::v1::GetConsistencyProofRequest request;
    request.set_old_size(old_size);
    request.set_new_size(new_size);
    tellonce::v1::GetConsistencyProofResponse response;
    if (!Call(*conn, [&](grpc::ClientContext* context) {
          return TransparencyService::NewStub(conn->channel)
              ->GetConsistencyProof(context, request, &response);
        })) {
      return kExitFailed;
    }
    if (response.old_size() != old_size || response.new_size() != new_size) {
      return Failed(args, absl::StrCat("the broker answered for sizes ", response.old_size(),
                                       " and ", response.new_size()));
    }
    for (const std::string& node : response.proof()) {
      absl::StatusOr<certs::Hash> h = certs::HashFromBytes(node);
      if (!h.ok()) return Failed(args, "the proof holds a node that is not 32 bytes");
      proof.push_back(*h);
    }
  }
  absl::Status verified =
      certs::VerifyConsistency(old_size, new_size, old_cp->head.root, new_cp->head.root, proof);
  if (!verified.ok()) {
    return Failed(args,
                  absl::StrCat("the log of size ", new_size, " does not extend the log of size ",
                               old_size, ": ", verified.message()));
  }
  if (args.json()) {
    JsonObject()
        .Add("ok", true)
        .Add("old_size", old_size)
        .Add("old_signed_at", FormatTime(old_cp->checkpoint.signed_at()))
        .Add("new_size", new_size)
        .Add("new_signed_at", FormatTime(new_cp->checkpoint.signed_at()))
        .Print();
    return kExitOk;
  }
  std::cout << "OK: the log of size " << new_size << " (signed at "
            << FormatTime(new_cp->checkpoint.signed_at()) << ") extends the log of size "
            << old_size << " (signed at " << FormatTime(old_cp->checkpoint.signed_at()) << ")\n";
  return kExitOk;
}

int AuditProve(const Args& args) {
  absl::StatusOr<BrokerKey> broker = LoadBrokerKey(args);
  if (!broker.ok()) return Fail(broker.status());
  if (args.Has("index")) return ProveInclusion(args, *broker);
  if (args.Has("old") || args.Has("new")) return ProveConsistency(args, *broker);
  return Fail(absl::InvalidArgumentError("--index, or --old and --new: required"));
}

// "exported N event(s) and M checkpoint(s) to FILE", or the same as JSON.
int PrintExported(const Args& args, uint64_t events, uint64_t checkpoints) {
  if (args.json()) {
    JsonObject()
        .Add("events", events)
        .Add("checkpoints", checkpoints)
        .Add("out", args.Get("out"))
        .Print();
  } else {
    std::cout << "exported " << events << " event(s) and " << checkpoints << " checkpoint(s) to "
              << args.Get("out") << "\n";
  }
  return kExitOk;
}

int ExportOnline(const Args& args) {
  uint32_t page_size = 0;
  if (args.Has("page-size") && !absl::SimpleAtoi(args.Get("page-size"), &page_size)) {
    return Fail(absl::InvalidArgumentError("--page-size: must be a number"));
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  std::unique_ptr<TransparencyService::Stub> stub = TransparencyService::NewStub(conn->channel);
  absl::StatusOr<ExportWriter> writer = ExportWriter::Create(args.Get("out"));
  if (!writer.ok()) return Fail(writer.status());
  tellonce::v1::ExportAccessLogRequest request;
  request.set_max_events(page_size);
  tellonce::v1::AccessLogExportHeader header;
  // The first page fixes what the export holds: the events up to its log size that
  // the broker has hashed (it serves only those; later ones go in the next export).
  std::optional<uint64_t> log_size;
  while (!log_size.has_value() || request.start() < *log_size) {
    tellonce::v1::ExportAccessLogResponse response;
    if (!Call(*conn, [&](grpc::ClientContext* context) {
          return stub->ExportAccessLog(context, request, &response);
        })) {
      return kExitFailed;
    }
    if (!log_size.has_value()) log_size = response.log_size();
    if (response.events_size() == 0) break;
    for (const tellonce::v1::ExportedEvent& e : response.events()) {
      if (e.index() >= *log_size) break;
      if (absl::Status s = writer->Add(e); !s.ok()) return Fail(s);
    }
    const uint64_t next = response.events(response.events_size() - 1).index() + 1;
    if (next <= request.start()) {
      return Fail(absl::InternalError("the broker's export does not advance"));
    }
    request.set_start(next);
  }
  // Checkpoints come in their own pages: a long-lived log has many.
  tellonce::v1::ExportCheckpointsRequest checkpoints_request;
  while (true) {
    tellonce::v1::ExportCheckpointsResponse response;
    if (!Call(*conn, [&](grpc::ClientContext* context) {
          return stub->ExportCheckpoints(context, checkpoints_request, &response);
        })) {
      return kExitFailed;
    }
    for (tellonce::v1::SignedCheckpoint& c : *response.mutable_checkpoints()) {
      *header.add_checkpoints() = std::move(c);
    }
    if (!response.more()) break;
    if (response.next_start_size() <= checkpoints_request.start_size()) {
      return Fail(absl::InternalError("the broker's checkpoint export does not advance"));
    }
    checkpoints_request.set_start_size(response.next_start_size());
  }
  const uint64_t written = writer->count();
  const uint64_t checkpoints = header.checkpoints_size();
  if (absl::Status s = writer->Finish(std::move(header)); !s.ok()) return Fail(s);
  return PrintExported(args, written, checkpoints);
}

int AuditExport(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"out"}); !s.ok()) return Fail(s);
  if (!args.Has("data-dir")) return ExportOnline(args);
  absl::StatusOr<LogCopy> copy = ReadDataDirectory(args.Get("data-dir"));
  if (!copy.ok()) return Fail(copy.status());
  if (absl::Status s = WriteExportFile(args.Get("out"), *copy); !s.ok()) return Fail(s);
  return PrintExported(args, copy->events.size(), copy->checkpoints.size());
}

int AuditVerify(const Args& args) {
  if (args.Has("data-dir") == args.Has("log")) {
    return Fail(absl::InvalidArgumentError("one of --data-dir and --log: required"));
  }
  if (absl::Status s = RequireFlags(args, {"checkpoint", "broker-cert"}); !s.ok()) return Fail(s);
  absl::StatusOr<BrokerKey> broker = LoadBrokerKey(args);
  if (!broker.ok()) return Fail(broker.status());
  absl::StatusOr<VerifiedCheckpoint> cp =
      ReadCheckpointFile("checkpoint", args.Get("checkpoint"), *broker);
  if (!cp.ok()) return CheckpointFailure(args, cp.status());
  absl::StatusOr<LogCopy> copy = args.Has("data-dir") ? ReadDataDirectory(args.Get("data-dir"))
                                                      : ReadExportFile(args.Get("log"));
  if (!copy.ok()) return Fail(copy.status());

  std::vector<TreeHead> others;
  uint64_t rejected = 0;
  for (const tellonce::v1::SignedCheckpoint& c : copy->checkpoints) {
    absl::StatusOr<tellonce::v1::Checkpoint> parsed =
        VerifyCheckpoint(c, broker->key, broker->issuer);
    absl::StatusOr<TreeHead> head =
        parsed.ok() ? ToTreeHead(*parsed) : absl::StatusOr<TreeHead>(parsed.status());
    if (head.ok()) {
      others.push_back(*head);
    } else {
      ++rejected;
    }
  }
  LogVerdict verdict = VerifyLog(*copy, cp->head, others);
  const int code = verdict.ok ? kExitOk : kExitFailed;
  if (args.json()) {
    JsonObject result;
    result.Add("ok", verdict.ok).Add("summary", verdict.Summary());
    // The size checked: the checkpoint's, which every event below it was checked against.
    result.Add("checked_size", verdict.tree_size);
    if (!verdict.ok) {
      if (verdict.first_bad.has_value()) {
        result.Add("first_bad_index", *verdict.first_bad);
      } else {
        result.Add("bad_from", verdict.bad_from).Add("bad_to", verdict.bad_to);
      }
      result.Add("reason", verdict.reason);
    }
    result.Add("uncovered_events", verdict.uncovered)
        .AddRaw("checkpoint", JsonObject()
                                  .Add("size", cp->head.size)
                                  .Add("root", certs::HashToHex(cp->head.root))
                                  .Add("signed_at", FormatTime(cp->checkpoint.signed_at()))
                                  .ToString())
        .AddRaw("log_copy",
                JsonObject()
                    .Add("events", static_cast<uint64_t>(copy->events.size()))
                    .Add("claimed_size", copy->claimed_size)
                    .Add("stored_checkpoints", static_cast<uint64_t>(copy->checkpoints.size()))
                    .Add("rejected_checkpoints", rejected)
                    .ToString())
        .Print();
    return code;
  }
  std::cout << verdict.Summary() << "\n";
  std::cout << "  checkpoint  size " << cp->head.size << ", root "
            << certs::HashToHex(cp->head.root) << ", signed at "
            << FormatTime(cp->checkpoint.signed_at()) << "\n"
            << "  log copy    " << copy->events.size() << " event(s), " << copy->checkpoints.size()
            << " stored checkpoint(s)";
  if (copy->claimed_size != copy->events.size()) {
    std::cout << "; its metadata counts " << copy->claimed_size << " event(s)";
  }
  std::cout << "\n";
  if (verdict.uncovered > 0) {
    std::cout << "  note        " << verdict.uncovered
              << " later event(s) are not covered by this checkpoint\n";
  }
  if (rejected > 0) {
    std::cout << "  warning     " << rejected
              << " stored checkpoint(s) do not verify with the signing keys\n";
  }
  return code;
}

}  // namespace

std::vector<Command> TransparencyCommands() {
  const ops::FlagSpec broker_cert{"broker-cert", "FILE",
                                  "the broker's certificate (PEM), whose SPIFFE id must be the "
                                  "checkpoint's issuer; required"};
  std::vector<ops::FlagSpec> access_flags = {
      {"citizen", "ID", "the citizen's id; required"},
      {"from", "RFC3339", "only events at or after this time"},
      {"to", "RFC3339", "only events before this time"}};
  for (ops::FlagSpec& f : PagingFlags()) access_flags.push_back(std::move(f));
  for (ops::FlagSpec& f : CitizenAssertionFlags()) access_flags.push_back(std::move(f));
  return {
      {.words = {"access", "list"},
       .synopsis = "--citizen ID [--from RFC3339] [--to RFC3339] [--page-size N] "
                   "[--page-token T] [--all]",
       .description = "A citizen's access history: who obtained what, when, on which basis.\n"
                      "A portal sees every access to the citizen's data; a consumer its own.",
       .flags = access_flags,
       .run = ListAccess},
      {.words = {"audit", "checkpoint"},
       .synopsis = "[--fresh] --out FILE --broker-cert FILE --signing-keys DIR",
       .description = "Fetch the access log's signed checkpoint, verify it and save it.",
       .flags = {{"fresh", "", "ask for a checkpoint covering every event so far"},
                 {"out", "FILE", "where to save it (binary SignedCheckpoint); required"},
                 broker_cert,
                 SigningKeysFlag()},
       .run = AuditCheckpoint},
      {.words = {"audit", "prove"},
       .synopsis = "(--index N --checkpoint FILE | --old FILE --new FILE) --broker-cert FILE "
                   "--signing-keys DIR",
       .description = "Prove an event is in a signed log, or that one checkpoint extends another.\n"
                      "With --index: event N is in the log the checkpoint signs (inclusion).\n"
                      "With --old and --new: the newer checkpoint extends the older one\n"
                      "(consistency). Prints \"OK: ...\", or \"FAILED: ...\" and exits 1.",
       .flags = {{"index", "N", "the event to prove (with --checkpoint)"},
                 {"checkpoint", "FILE", "a checkpoint saved by `audit checkpoint`"},
                 {"old", "FILE", "the older checkpoint (with --new)"},
                 {"new", "FILE", "the newer checkpoint (with --old)"},
                 broker_cert,
                 SigningKeysFlag()},
       .run = AuditProve},
      {.words = {"audit", "export"},
       .synopsis = "--out FILE [--data-dir DIR] [--page-size N]",
       .description = "Write the whole access log to an export file.\n"
                      "Online as an admin, or offline from a copy of the broker's data directory\n"
                      "(--data-dir).",
       .flags = {{"out", "FILE", "the export file to write; required"},
                 {"data-dir", "DIR", "read this copy of the data directory instead of the broker"},
                 {"page-size", "N", "events per call (online); default the broker's"}},
       .run = AuditExport},
      {.words = {"audit", "verify"},
       .synopsis = "(--data-dir DIR | --log FILE) --checkpoint FILE --broker-cert FILE "
                   "--signing-keys DIR",
       .description = "Offline: check a copy of the access log against a signed checkpoint.\n"
                      "Prints \"OK: ...\", or \"FAILED: first bad index K: ...\" and exits 1.",
       .flags = {{"data-dir", "DIR", "a copy of the broker's data directory"},
                 {"log", "FILE", "an export file (from `audit export`)"},
                 {"checkpoint", "FILE", "a checkpoint saved by `audit checkpoint`; required"},
                 broker_cert,
                 SigningKeysFlag()},
       .connects = false,
       .run = AuditVerify},
  };
}

}  // namespace tellonce::cli
