// test_subscriber: a subscriber connector for the notification tests. Its ChangeHandler
// writes one line per event it is handed to a file, so a test can check what reached
// the agency's code and how often; it can be told to fail.
//
//   test_subscriber --config FILE [--port-file FILE]
//
// FILE is an ordinary ConnectorConfig (agency_id one of the directory's subscribers;
// seen_events_file as the test likes). Its data_file is a text file of two lines:
//
//   <mode>          ok: acknowledge every event; fail: answer UNAVAILABLE ("failing on
//                   purpose") without recording anything
//   <events file>   where the handled events go, appended
//
// The mode is read again for every event, so a test switches it while the connector
// runs. Each line of the events file is
//
//   <event_id> <provider> <event_type> <citizen_id> <delivery_id> <basis>
//
// with <basis> "consent:<id>", "mandate:<id>" or "none", written with one write(2) on a
// file opened O_APPEND before the handler answers.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "connectors/examples/agency.h"
#include "connectors/sdk.h"
#include "proto/textproto.h"

namespace tellonce::testing {
namespace {

using ::tellonce::connectors::ChangeContext;
using ::tellonce::connectors::ChangeHandler;
using ::tellonce::connectors::ConnectorOptions;
using ::tellonce::connectors::examples::ConnectorParts;

struct Settings {
  std::string mode;
  std::string events_file;
};

absl::StatusOr<Settings> ReadSettings(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  std::istringstream in(*text);
  Settings settings;
  if (!std::getline(in, settings.mode) || !std::getline(in, settings.events_file) ||
      settings.events_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": want two lines, the mode and the events file"));
  }
  if (settings.mode != "ok" && settings.mode != "fail") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": unknown mode \"", settings.mode, "\"; one of ok, fail"));
  }
  return settings;
}

// Records each event it is handed; thread-safe (one O_APPEND write per event).
class RecordingSubscriber final : public ChangeHandler {
 public:
  explicit RecordingSubscriber(std::string settings_file)
      : settings_file_(std::move(settings_file)) {}

  absl::Status OnChange(const ChangeContext& ctx) override {
    absl::StatusOr<Settings> settings = ReadSettings(settings_file_);
    if (!settings.ok()) return absl::InternalError(settings.status().message());
    if (settings->mode == "fail") return absl::UnavailableError("failing on purpose");
    std::string basis = "none";
    if (ctx.basis.has_consent_id()) basis = absl::StrCat("consent:", ctx.basis.consent_id());
    if (ctx.basis.has_mandate_id()) basis = absl::StrCat("mandate:", ctx.basis.mandate_id());
    const std::string line = absl::StrCat(absl::StrJoin({ctx.event_id, ctx.provider, ctx.event_type,
                                                         ctx.citizen_id, ctx.delivery_id, basis},
                                                        " "),
                                          "\n");
    const int fd =
        open(settings->events_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return absl::InternalError(absl::StrCat("events file: ", std::strerror(errno)));
    const ssize_t n = write(fd, line.data(), line.size());
    close(fd);
    if (n != static_cast<ssize_t>(line.size())) {
      return absl::InternalError("events file: short write");
    }
    return absl::OkStatus();
  }

 private:
  const std::string settings_file_;
};

absl::StatusOr<ConnectorParts> MakeSubscriber(const ConnectorOptions& options) {
  if (options.data_file.empty()) {
    return absl::InvalidArgumentError("data_file: required (mode and events file)");
  }
  absl::StatusOr<Settings> settings = ReadSettings(options.data_file);
  if (!settings.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("data_file: ", settings.status().message()));
  }
  ConnectorParts parts;
  parts.handler = std::make_unique<RecordingSubscriber>(options.data_file);
  parts.serves = absl::StrCat("change notifications, recorded in ", settings->events_file,
                              " (mode ", settings->mode, ")");
  return parts;
}

}  // namespace
}  // namespace tellonce::testing

int main(int argc, char** argv) {
  return tellonce::connectors::examples::RunConnectorParts(
      "test_subscriber", "Test subscriber", tellonce::testing::MakeSubscriber, argc, argv);
}
