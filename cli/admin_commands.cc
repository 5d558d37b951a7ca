// `tellonce admin status` and `tellonce admin backup` (AdminService, as an operator).

#include <chrono>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/call.h"
#include "cli/command.h"
#include "proto/time.h"
#include "tellonce/v1/admin.grpc.pb.h"

namespace tellonce::cli {
namespace {

// "expires in 29 days (2026-12-30T00:00:00Z)", "expired 2h5m ago (...)".
std::string Until(absl::Time at, absl::Time now, const char* future, const char* past) {
  const absl::Duration left = at - now;
  std::string amount;
  if (absl::AbsDuration(left) >= absl::Hours(48)) {
    amount = absl::StrCat(absl::ToInt64Hours(absl::AbsDuration(left)) / 24, " days");
  } else {
    amount = HumanDuration(left);
  }
  return left >= absl::ZeroDuration()
             ? absl::StrCat(future, " in ", amount, " (", FormatUtc(at), ")")
             : absl::StrCat(past, " ", amount, " ago (", FormatUtc(at), ")");
}

void PrintStatus(const tellonce::v1::BrokerStatus& s) {
  const absl::Time now = absl::Now();
  std::cout << "version          " << s.version() << "\n"
            << "uptime           " << HumanDuration(absl::Seconds(s.uptime_seconds()))
            << " (since " << FormatTime(s.started_at()) << ")\n"
            << "ready            "
            << (s.ready() ? "yes" : absl::StrCat("no: ", absl::StrJoin(s.not_ready_reasons(), "; ")))
            << "\n"
            << "access log       " << s.access_log_size() << " event(s), "
            << s.access_log_hashed() << " hashed\n"
            << "last checkpoint  ";
  if (s.has_last_checkpoint_at()) {
    std::cout << "size " << s.last_checkpoint_size() << ", signed "
              << HumanDuration(now - FromProtoTime(s.last_checkpoint_at())) << " ago ("
              << FormatTime(s.last_checkpoint_at()) << ")\n";
  } else {
    std::cout << "none signed yet\n";
  }
  std::cout << "outbox           " << s.deliveries_pending() << " pending, "
            << s.deliveries_dead() << " dead deliveries\n"
            << "certificate      "
            << (s.has_tls_certificate_not_after()
                    ? Until(FromProtoTime(s.tls_certificate_not_after()), now, "expires", "expired")
                    : "expiry unknown")
            << "\n"
            << "crl              "
            << (s.has_crl_next_update()
                    ? Until(FromProtoTime(s.crl_next_update()), now, "next update",
                            "next update was due")
                    : "next update unknown")
            << "\n";
}

int Status(const Args& args) {
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  tellonce::v1::BrokerStatus status;
  if (!Call(*conn, [&](grpc::ClientContext* context) {
        return tellonce::v1::AdminService::NewStub(conn->channel)
            ->GetStatus(context, tellonce::v1::GetStatusRequest(), &status);
      })) {
    return kExitFailed;
  }
  if (args.json()) {
    PrintJson(status, /*all_fields=*/true);
  } else {
    PrintStatus(status);
  }
  return kExitOk;
}

int Backup(const Args& args) {
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  tellonce::v1::BackupResponse backup;
  if (!Call(*conn, [&](grpc::ClientContext* context) {
        // A backup of a large database takes a while: a generous deadline of its own.
        context->set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
        return tellonce::v1::AdminService::NewStub(conn->channel)
            ->Backup(context, tellonce::v1::BackupRequest(), &backup);
      })) {
    return kExitFailed;
  }
  if (args.json()) {
    PrintJson(backup, /*all_fields=*/true);
    return kExitOk;
  }
  std::cout << "backup           " << backup.directory() << " (on the broker's host)\n"
            << "access log       " << backup.access_log_size() << " event(s) at the start\n"
            << "checkpoint       tree size " << backup.checkpoint_size()
            << " (signed-checkpoint beside data/)\n"
            << "size             " << backup.bytes() << " bytes\n"
            << "took             "
            << HumanDuration(FromProtoTime(backup.finished_at()) -
                             FromProtoTime(backup.started_at()))
            << "\n";
  return kExitOk;
}

}  // namespace

std::vector<Command> AdminCommands() {
  return {
      {.words = {"admin", "status"},
       .synopsis = "",
       .description = "The broker's status (as an operator: an agency with the ADMIN role).\n"
                      "Version, uptime, access log size and last signed checkpoint, outbox\n"
                      "depth, TLS certificate and CRL expiry, readiness.",
       .flags = {},
       .run = Status},
      {.words = {"admin", "backup"},
       .synopsis = "",
       .description = "An online backup of the broker's database (as an operator: ADMIN role),\n"
                      "written on the broker's host into a new folder under the broker's\n"
                      "backup.directory while it serves. Prints the folder (--json for scripts).\n"
                      "Restore: deploy/README.md.",
       .flags = {},
       .run = Backup},
  };
}

}  // namespace tellonce::cli
