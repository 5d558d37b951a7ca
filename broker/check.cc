#include "broker/check.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "broker/access_log.h"
#include "broker/checkpoint_guard.h"
#include "certs/identity.h"
#include "certs/signing.h"
#include "certs/tls.h"
#include "consent/directory.h"
#include "storage/postgres/postgres_storage.h"
#include "storage/rocksdb/rocks_storage.h"

namespace tellonce::broker {
namespace {

// The folder a file would be written to exists and this process may write there.
std::optional<std::string> FolderProblem(const std::string& what, const std::string& file) {
  std::string folder = std::filesystem::path(file).parent_path().string();
  if (folder.empty()) folder = ".";
  if (access(folder.c_str(), W_OK | X_OK) != 0) {
    return absl::StrCat(what, " ", file, ": its folder ", folder,
                        " does not exist or is not writable by this user");
  }
  return std::nullopt;
}

void CheckDataDirectory(const BrokerOptions& options, CheckReport* report) {
  if (!options.postgres.conninfo.empty()) {
    // Reads only: the schema version; the rollback guard is checked at start.
    absl::StatusOr<storage::postgres::SchemaVersions> versions =
        storage::postgres::ReadPostgresSchemaVersions(options.postgres.conninfo);
    if (!versions.ok()) {
      report->problems.push_back(absl::StrCat("storage.postgres: ", versions.status().message()));
    } else if (versions->database > versions->build) {
      report->problems.push_back(absl::StrCat(
          "storage.postgres: schema version ", versions->database,
          " was written by a newer tellonce (this build reads up to ", versions->build,
          "); upgrade the broker"));
    } else if (versions->database < versions->build && !options.postgres.migrate_on_start) {
      report->problems.push_back(absl::StrCat(
          "storage.postgres: schema version ", versions->database, ", this build needs ",
          versions->build, " and migrate_on_start is CHECK_ONLY: run tellonce-broker --config "
          "FILE --migrate first"));
    } else {
      report->notes.push_back(absl::StrCat(
          "storage.postgres: reachable, schema version ", versions->database,
          versions->database < versions->build
              ? absl::StrCat(" (migrated to ", versions->build, " at start)")
              : std::string(" (current)")));
    }
    return;
  }
  const std::string& dir = options.data_dir;
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    if (std::optional<std::string> p = FolderProblem("data_dir", dir); p.has_value()) {
      report->problems.push_back(*p);
    } else {
      report->notes.push_back(absl::StrCat("data_dir ", dir, ": absent; created (mode 0700) at "
                                           "the first start"));
    }
    return;
  }
  if (!S_ISDIR(st.st_mode)) {
    report->problems.push_back(absl::StrCat("data_dir ", dir, ": not a directory"));
    return;
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    report->problems.push_back(
        absl::StrCat("data_dir ", dir, ": not writable by this user (uid ", getuid(), ")"));
  }
  if ((st.st_mode & 077) != 0) {
    report->notes.push_back(absl::StrCat("data_dir ", dir, ": mode ",
                                         absl::StrFormat("%04o", st.st_mode & 07777),
                                         "; made 0700 (files 0600) at start"));
  }
  if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT")) {
    report->notes.push_back(absl::StrCat("data_dir ", dir, ": no database yet; created at start"));
    return;
  }
  // Read-only: no lock (a running broker holds it), no LOG, no write of any kind.
  absl::StatusOr<std::unique_ptr<storage::Storage>> db = storage::OpenRocksStorageReadOnly(dir);
  if (!db.ok()) {
    report->problems.push_back(absl::StrCat("data_dir: ", db.status().message()));
    return;
  }
  absl::StatusOr<std::unique_ptr<CheckpointGuard>> guard =
      CheckpointGuard::Load(options.signed_checkpoint_file);
  if (!guard.ok()) {
    report->problems.push_back(absl::StrCat("signed_checkpoint_file: ", guard.status().message()));
    return;
  }
  std::optional<tellonce::v1::SignedCheckpoint> held = (*guard)->held();
  std::optional<uint64_t> held_size;
  if (held.has_value()) {
    tellonce::v1::Checkpoint body;
    if (body.ParseFromString(held->body())) held_size = body.tree_size();
  }
  absl::StatusOr<CheckpointGuard::LogState> state =
      CheckpointGuard::ReadLogState(**db, held_size);
  if (!state.ok()) {
    report->problems.push_back(absl::StrCat("data_dir ", dir, ": ", state.status().message()));
    return;
  }
  report->notes.push_back(absl::StrCat("data_dir ", dir, ": database opens (read-only), ",
                                       state->size, " access events"));
  if (absl::Status checked = (*guard)->Check(*state, dir); !checked.ok()) {
    if (options.accept_log_rollback) {
      report->notes.push_back(absl::StrCat("with --accept-log-rollback the broker would start "
                                           "and record: ",
                                           checked.message()));
    } else {
      report->problems.push_back(std::string(checked.message()));
    }
  } else if (held.has_value()) {
    report->notes.push_back(absl::StrCat("signed_checkpoint_file ", (*guard)->path(),
                                         ": the database holds its checkpoint (",
                                         DescribeCheckpoint(*held), ")"));
  }
}

}  // namespace

CheckReport CheckBroker(const BrokerOptions& options) {
  CheckReport report;
  absl::StatusOr<std::shared_ptr<const consent::Directory>> directory =
      consent::Directory::LoadFile(options.directory_file);
  std::string trust_domain;
  if (directory.ok()) {
    trust_domain = (*directory)->trust_domain();
    report.notes.push_back(absl::StrCat("directory_file ", options.directory_file,
                                        ": valid, trust domain ", trust_domain, ", ",
                                        (*directory)->proto().agencies_size(), " agencies"));
  } else {
    report.problems.push_back(absl::StrCat("directory_file: ", directory.status().message()));
  }

  // Without a directory the SAN cannot be compared; the files are still checked.
  const std::string broker_id =
      trust_domain.empty() ? std::string() : certs::BrokerSpiffeId(trust_domain);
  absl::Status tls = certs::CheckTlsFiles(options.tls, broker_id);
  if (!tls.ok()) {
    report.problems.push_back(std::string(tls.message()));
  } else {
    report.notes.push_back(absl::StrCat("tls: certificate ", options.tls.cert_file, " is ",
                                        broker_id, ", verified by ", options.tls.ca_file,
                                        ", key matches",
                                        options.tls.crl_dir.empty() ? "" : ", CRLs current"));
  }

  absl::Status signing_mode =
      options.allow_readable_private_keys
          ? absl::OkStatus()
          : certs::CheckPrivateKeyPermissions("signing.key_file", options.signing_key_file);
  absl::StatusOr<certs::SigningKey> signing =
      certs::SigningKey::FromPemFile(options.signing_key_file, options.signing_key_id);
  if (!signing_mode.ok()) {
    report.problems.push_back(std::string(signing_mode.message()));
  } else if (!signing.ok()) {
    report.problems.push_back(absl::StrCat("signing.key_file: ", signing.status().message()));
  } else {
    report.notes.push_back(absl::StrCat("signing: key ", options.signing_key_id, " loads"));
  }

  CheckDataDirectory(options, &report);
  if (std::optional<std::string> p =
          FolderProblem("signed_checkpoint_file", options.signed_checkpoint_file);
      p.has_value()) {
    report.problems.push_back(*p);
  }
  if (!options.backup_dir.empty()) {
    const std::string target = std::filesystem::exists(options.backup_dir)
                                   ? options.backup_dir + "/x"
                                   : options.backup_dir;
    if (std::optional<std::string> p = FolderProblem("backup.directory", target); p.has_value()) {
      report.problems.push_back(*p);
    }
  }
  return report;
}

}  // namespace tellonce::broker
