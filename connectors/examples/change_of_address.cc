#include "connectors/examples/change_of_address.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certs/sha256.h"
#include "connectors/atomic_file.h"
#include "connectors/config.h"
#include "connectors/examples/agency.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/client_context.h"
#include "ops/flags.h"
#include "ops/log.h"
#include "proto/textproto.h"
#include "proto/time.h"
#include "tellonce/v1/agency_records.pb.h"
#include "tellonce/v1/notification.grpc.pb.h"

namespace tellonce::connectors::examples {
namespace {

// Well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF): proto3 strings
// must be, or the records file would no longer load.
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int extra = 0;
    uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      extra = 1;
      code = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2;
      code = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;  // truncated sequence
    for (int k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(s[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      code = (code << 6) | (next & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (code < kMin[extra] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

absl::Status CheckAddress(const std::string& address) {
  auto invalid = [](absl::string_view reason) {
    return absl::InvalidArgumentError(absl::StrCat("address: ", reason));
  };
  if (address.empty()) return invalid("required");
  if (address.size() > kMaxAddressBytes) {
    return invalid(absl::StrCat("longer than ", kMaxAddressBytes, " bytes"));
  }
  for (char c : address) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7f) return invalid("contains control characters");
  }
  if (!IsUtf8(address)) return invalid("not UTF-8");
  return absl::OkStatus();
}

// The comment lines (and blank lines) at the top of a text-format file.
std::string LeadingComments(const std::string& text) {
  size_t end = 0;
  while (end < text.size()) {
    const size_t line_end = text.find('\n', end);
    const std::string_view line(text.data() + end,
                                (line_end == std::string::npos ? text.size() : line_end) - end);
    const size_t first = line.find_first_not_of(" \t");
    if (first != std::string_view::npos && line[first] != '#') break;
    if (line_end == std::string::npos) return text;
    end = line_end + 1;
  }
  return text.substr(0, end);
}

// An exclusive flock on "<path>.lock", released on destruction.
class FileLock {
 public:
  static absl::StatusOr<FileLock> Take(const std::string& path) {
    const std::string lock_path = path + ".lock";
    const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::InternalError(absl::StrCat(lock_path, ": ", std::strerror(errno)));
    }
    if (flock(fd, LOCK_EX) != 0) {
      const int error = errno;
      close(fd);
      return absl::InternalError(absl::StrCat(lock_path, ": ", std::strerror(error)));
    }
    return FileLock(fd);
  }
  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock() {
    if (fd_ >= 0) close(fd_);  // also releases the lock
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

struct MoveFlags {
  std::string config;
  std::string citizen;
  std::string address;
  std::string event_id;
};

const std::vector<ops::FlagSpec>& MoveFlagTable() {
  static const auto* table = new std::vector<ops::FlagSpec>{
      {"config", "FILE", "connector configuration (its data_file and broker_address); required"},
      {"citizen", "ID", "the citizen who moved; required"},
      {"address", "TEXT", "the new address; required"},
      {"event-id", "ID", "the event's id; default derived from citizen, address and time"},
      ops::VersionFlag(),
      ops::HelpFlag(),
  };
  return *table;
}

std::string MoveUsage(const std::string& program) {
  return absl::StrCat(
      "usage: ", program,
      " --config FILE move --citizen ID --address TEXT [--event-id ID]\n"
      "  Records that the citizen moved (person.address in the configuration's data_file)\n"
      "  and tells the broker at broker_address once (an ADDRESS_CHANGED event). Running\n"
      "  the same command again republishes the same event, which the broker ignores.\n",
      ops::FlagHelp(MoveFlagTable()),
      "Exit codes: 0 published (or already published), 1 failed, 2 usage error.\n");
}

// False on bad usage (one line on stderr naming the flag). Exits 0 for --help and
// --version.
bool ParseMoveFlags(const std::string& program, int argc, char** argv, MoveFlags* flags) {
  auto usage_error = [&](absl::string_view what) {
    std::fprintf(stderr, "%s move: %.*s (see %s move --help)\n", program.c_str(),
                 static_cast<int>(what.size()), what.data(), program.c_str());
    return false;
  };
  absl::StatusOr<ops::ParsedFlags> parsed =
      ops::ParseFlags(std::vector<std::string>(argv + 1, argv + argc), MoveFlagTable());
  if (!parsed.ok()) return usage_error(parsed.status().message());
  if (parsed->Has("help")) {
    std::fputs(MoveUsage(program).c_str(), stdout);
    std::exit(0);
  }
  if (parsed->Has("version")) {
    std::fputs(ops::VersionLine(program).c_str(), stdout);
    std::exit(0);
  }
  if (parsed->positional != std::vector<std::string>{"move"}) {
    for (const std::string& word : parsed->positional) {
      if (word != "move") return usage_error(absl::StrCat("unexpected argument \"", word, "\""));
    }
    return usage_error("expected the command \"move\" once");
  }
  flags->config = parsed->Get("config");
  flags->citizen = parsed->Get("citizen");
  flags->address = parsed->Get("address");
  flags->event_id = parsed->Get("event-id");
  for (const char* name : {"config", "citizen", "address"}) {
    if (!parsed->Has(name)) return usage_error(absl::StrCat("--", name, " is required"));
  }
  return true;
}

}  // namespace

absl::StatusOr<RecordedMove> RecordMove(const std::string& path, const std::string& citizen_id,
                                        const std::string& address, absl::Time now) {
  if (absl::Status s = CheckAddress(address); !s.ok()) return s;
  absl::StatusOr<FileLock> lock = FileLock::Take(path);
  if (!lock.ok()) return lock.status();
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  tellonce::v1::AgencyRecords records;
  if (absl::Status s = ParseTextProto(*text, path, &records); !s.ok()) return s;
  tellonce::v1::CitizenRecord* record = nullptr;
  for (tellonce::v1::CitizenRecord& r : *records.mutable_records()) {
    if (r.citizen_id() == citizen_id) record = &r;
  }
  if (record == nullptr) return absl::NotFoundError("no record of this citizen");

  auto current = record->attributes().find(kAddressAttribute);
  if (current != record->attributes().end() && current->second.has_string_value() &&
      current->second.string_value() == address && record->has_as_of()) {
    return RecordedMove{.changed = false, .as_of = FromProtoTime(record->as_of())};
  }
  (*record->mutable_attributes())[kAddressAttribute].set_string_value(address);
  // Whole microseconds: as_of is also the event's occurred_at, compared byte for byte
  // when the move is published again.
  const absl::Time as_of = absl::FromUnixMicros(absl::ToUnixMicros(now));
  *record->mutable_as_of() = ToProtoTime(as_of);

  google::protobuf::TextFormat::Printer printer;
  printer.SetUseUtf8StringEscaping(true);
  std::string body;
  if (!printer.PrintToString(records, &body)) {
    return absl::InternalError(absl::StrCat(path, ": cannot print the updated records"));
  }
  if (absl::Status s = WriteFileAtomically(path, LeadingComments(*text) + body); !s.ok()) {
    return s;
  }
  return RecordedMove{.changed = true, .as_of = as_of};
}

std::string DefaultMoveEventId(const std::string& citizen_id, const std::string& address,
                               absl::Time as_of) {
  const std::string input = absl::StrCat(citizen_id, "\n", address, "\n", absl::ToUnixNanos(as_of));
  const std::string hex = certs::HashToHex(certs::Sha256({input})).substr(0, 20);
  return absl::StrCat("address-", hex);
}

int RunMoveCommand(const std::string& program, int argc, char** argv) {
  MoveFlags flags;
  if (!ParseMoveFlags(program, argc, argv, &flags)) return 2;
  auto fail = [&](absl::string_view what) {
    std::fprintf(stderr, "%s move: %s\n", program.c_str(), std::string(what).c_str());
    return 1;
  };

  absl::StatusOr<ConnectorOptions> options = LoadConnectorConfig(flags.config);
  if (!options.ok()) return fail(absl::StrCat("configuration: ", options.status().message()));
  if (options->data_file.empty()) {
    return fail(absl::StrCat("configuration: ", flags.config, ": data_file: required"));
  }
  if (options->broker_address.empty()) {
    return fail(absl::StrCat("configuration: ", flags.config,
                             ": broker_address: required to tell the broker"));
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = BrokerChannel(*options);
  if (!channel.ok()) return fail(absl::StrCat("configuration: ", channel.status().message()));

  absl::StatusOr<RecordedMove> moved =
      RecordMove(options->data_file, flags.citizen, flags.address, absl::Now());
  if (!moved.ok()) return fail(moved.status().message());
  const std::string at =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", moved->as_of, absl::UTCTimeZone());
  if (moved->changed) {
    std::printf("recorded: the civil registry now holds the new address (as of %s)\n", at.c_str());
  } else {
    std::printf(
        "the civil registry already holds this address (as of %s): telling the "
        "broker again\n",
        at.c_str());
  }

  tellonce::v1::PublishChangeRequest request;
  request.set_event_id(flags.event_id.empty()
                           ? DefaultMoveEventId(flags.citizen, flags.address, moved->as_of)
                           : flags.event_id);
  request.set_citizen_id(flags.citizen);
  request.set_event_type(kAddressChanged);
  request.add_attributes(kAddressAttribute);
  *request.mutable_occurred_at() = ToProtoTime(moved->as_of);
  auto stub = tellonce::v1::NotificationService::NewStub(*channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  context.set_wait_for_ready(true);
  tellonce::v1::PublishChangeResponse response;
  const grpc::Status status = stub->PublishChange(&context, request, &response);
  if (!status.ok()) {
    return fail(absl::StrCat(
        "the move is recorded, but the broker at ", options->broker_address, " was not told: ",
        absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())), ": ",
        status.error_message(), "\nRun the same command again to retry (event id ",
        request.event_id(), ")."));
  }
  if (response.replayed()) {
    std::printf("the broker already had event %s (%s, %s): nothing new to deliver\n",
                request.event_id().c_str(), kAddressChanged, kAddressAttribute);
  } else {
    std::printf(
        "told the broker once: event %s (%s, %s); it notifies the subscribers with a "
        "basis\n",
        request.event_id().c_str(), kAddressChanged, kAddressAttribute);
  }
  return 0;
}

namespace {

std::string BasisText(const tellonce::v1::Basis& basis) {
  if (basis.has_consent_id()) return absl::StrCat("consent ", basis.consent_id());
  if (basis.has_mandate_id()) return absl::StrCat("mandate ", basis.mandate_id());
  return "no basis given";
}

// How long one pull may take; the broker's own fetch deadline is shorter.
constexpr absl::Duration kPullDeadline = absl::Seconds(5);

}  // namespace

absl::Status AddressFollower::OnChange(const ChangeContext& ctx) {
  const std::string event =
      absl::StrCat(ctx.event_type, " (event ", ctx.event_id, " from ", ctx.provider, ", delivery ",
                   ctx.delivery_id, ", ", BasisText(ctx.basis), ")");
  bool follows = false;
  for (const std::string& a : ctx.attributes) follows = follows || a == kAddressAttribute;
  if (!follows) {
    ops::LogInfo(absl::StrCat("learned of ", event, ": nothing this agency keeps"));
    return absl::OkStatus();
  }
  tellonce::v1::GetAttributesRequest request;
  request.set_request_id(absl::StrCat("change-", ctx.delivery_id));
  request.set_citizen_id(ctx.citizen_id);
  request.add_attributes(kAddressAttribute);
  request.set_purpose(purpose_);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kPullDeadline));
  tellonce::v1::GetAttributesResponse response;
  const grpc::Status status = exchange_->GetAttributes(&context, request, &response);
  if (!status.ok()) {
    const auto code = static_cast<absl::StatusCode>(status.error_code());
    ops::LogWarning(absl::StrCat("learned of ", event, " but could not ask the broker for ",
                                 kAddressAttribute, ": ", absl::StatusCodeToString(code), ": ",
                                 status.error_message(), "; the broker will deliver it again"));
    if (code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded ||
        code == absl::StatusCode::kResourceExhausted) {
      return absl::UnavailableError("cannot reach the broker to fetch the changed value");
    }
    return absl::Status(code, "the broker refused the fetch of the changed value");
  }
  if (response.results_size() != 1) {
    return absl::InternalError("the broker answered a fetch of one attribute with another count");
  }
  const tellonce::v1::AttributeResult& result = response.results(0);
  const std::string code = tellonce::v1::ResultCode_Name(result.code());
  switch (result.code()) {
    case tellonce::v1::RESULT_OK:
      ops::LogInfo(absl::StrCat("learned of ", event, "; fetched the new ", kAddressAttribute,
                                " through the broker (exchange ", response.exchange_id(), ", from ",
                                result.provenance().provider(), ", for ", purpose_, ")"));
      return absl::OkStatus();
    case tellonce::v1::RESULT_PROVIDER_UNAVAILABLE:
    case tellonce::v1::RESULT_DEADLINE_EXCEEDED:
    case tellonce::v1::RESULT_PROVIDER_ERROR:
      ops::LogWarning(absl::StrCat("learned of ", event, " but the ", kAddressAttribute,
                                   " could not be fetched now (", code,
                                   "); the broker will deliver it again"));
      return absl::UnavailableError("the changed value's source cannot answer now");
    default:
      ops::LogInfo(absl::StrCat("learned of ", event, " but may not fetch the ", kAddressAttribute,
                                " (", code, "): acknowledged without it"));
      return absl::OkStatus();
  }
}

int RunAddressFollower(const std::string& program, const std::string& description,
                       const std::string& purpose, int argc, char** argv) {
  return RunConnectorParts(
      program, description,
      [&](const ConnectorOptions& options) -> absl::StatusOr<ConnectorParts> {
        absl::StatusOr<std::shared_ptr<grpc::Channel>> broker = BrokerChannel(options);
        if (!broker.ok()) {
          return absl::Status(
              broker.status().code(),
              absl::StrCat(broker.status().message(),
                           " (this agency pulls changed values through the broker)"));
        }
        ConnectorParts parts;
        parts.handler = std::make_unique<AddressFollower>(purpose, *std::move(broker));
        parts.serves = absl::StrCat("no attributes (consumer); change notifications, pulling ",
                                    kAddressAttribute, " from the broker at ",
                                    options.broker_address, " for ", purpose);
        return parts;
      },
      argc, argv);
}

}  // namespace tellonce::connectors::examples
