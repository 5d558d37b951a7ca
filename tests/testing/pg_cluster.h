#ifndef TELLONCE_TESTS_TESTING_PG_CLUSTER_H_
#define TELLONCE_TESTS_TESTING_PG_CLUSTER_H_

// A throwaway PostgreSQL 15 cluster for tests: initdb in a fresh temporary directory,
// a server listening only on a Unix socket inside it (no TCP port, so clusters of
// concurrent tests never collide), databases made on demand, and everything stopped and
// removed at the end.
//
// initdb and pg_ctl refuse to run as root, and CI runs as root: then they run as the
// `postgres` user (runuser -u postgres --) in a directory that user owns.
//
// Stopped also when the test does not get to clean up: a watchdog process, started
// with the cluster in its own session, waits on a pipe whose only writer is the test
// process; when the test process exits for any reason (a failed assertion, a crash, a
// kill by ctest's timeout) the pipe closes and the watchdog stops the server with
// `pg_ctl stop -m immediate` and removes the directory.
//
// Backups (tests of backup and restore): BaseBackup runs pg_basebackup into a folder
// inside the cluster's directory; StartFromBackup starts a new cluster (its own
// directory, socket and watchdog) from a copy of one, either as it was when the backup
// ended or, with a WAL archive (Options::archive_wal) and a recovery target, at a later
// point (point-in-time recovery).

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace tellonce::testing {

class PgCluster {
 public:
  struct Options {
    // fsync off makes tests faster; durability across a server crash without an OS
    // crash does not need it. Benchmarks turn it on.
    bool fsync = false;
    // Extra lines for postgresql.conf.
    std::vector<std::string> settings;
    // WAL archiving (archive_mode on) into archive_dir(), for point-in-time recovery.
    bool archive_wal = false;
  };

  // Where a restored cluster stops replaying the WAL (StartFromBackup). archive_dir
  // empty: only the WAL inside the backup is replayed (the state when the backup ended).
  struct RecoveryTarget {
    // The archive of the WAL written after the backup (the old cluster's archive_dir()).
    std::string archive_dir;
    // At most one: a restore point made by pg_create_restore_point, an LSN
    // ("0/3000148"), or a time ("2026-12-01 02:34:00.123+00"). None: the end of the
    // archive.
    std::string name;
    std::string lsn;
    std::string time;
  };

  // The directory of PostgreSQL's programs: $TELLONCE_PG_BINDIR, else Debian's.
  static std::string BinDir() {
    const char* env = std::getenv("TELLONCE_PG_BINDIR");
    return env != nullptr && *env != '\0' ? env : "/usr/lib/postgresql/15/bin";
  }

  // initdb + start. Errors name the step and point at its log.
  static absl::StatusOr<std::unique_ptr<PgCluster>> Start(Options options) {
    if (!std::filesystem::exists(BinDir() + "/initdb")) {
      return absl::FailedPreconditionError(
          absl::StrCat(BinDir(), "/initdb is missing: install postgresql-15 (./scripts/setup)"));
    }
    absl::StatusOr<std::unique_ptr<PgCluster>> made = Prepare();
    if (!made.ok()) return made.status();
    std::unique_ptr<PgCluster> c = *std::move(made);
    if (absl::Status s = c->Tool({"initdb", "-D", c->data(), "-U", "postgres", "-A", "trust", "-E",
                                  "UTF8", "--locale=C", "--no-sync"},
                                 "initdb.log");
        !s.ok()) {
      return s;
    }
    std::ofstream conf(c->data() + "/postgresql.conf", std::ios::app);
    conf << "\n# tellonce test cluster\n"
         << "listen_addresses = ''\n"
         << "unix_socket_directories = '" << c->dir_ << "'\n"
         << "port = " << kPort << "\n"
         << "max_connections = 200\n"
         << "shared_buffers = 64MB\n"
         << "fsync = " << (options.fsync ? "on" : "off") << "\n"
         << "full_page_writes = " << (options.fsync ? "on" : "off") << "\n"
         << "log_min_messages = warning\n";
    if (options.archive_wal) {
      if (absl::Status s = c->Run({"/bin/mkdir", "-m", "0700", c->archive_dir()}, "archive.log",
                                  c->as_postgres_);
          !s.ok()) {
        return s;
      }
      // test ! -f: an archived segment is never overwritten.
      conf << "archive_mode = on\n"
           << "archive_command = 'test ! -f \"" << c->archive_dir() << "/%f\" && cp \"%p\" \""
           << c->archive_dir() << "/%f\"'\n";
    }
    for (const std::string& line : options.settings) conf << line << "\n";
    conf.close();
    if (!conf) return absl::InternalError("cannot write postgresql.conf");
    if (absl::Status s = c->StartServer(); !s.ok()) return s;
    return c;
  }

  // A new cluster from a copy of the base backup in `backup` (BaseBackup's folder, left
  // as it is), with its own directory, socket and watchdog; started, and out of recovery
  // when this returns. Without an archive it holds what the backed-up cluster held when
  // the backup ended; with one, the archived WAL is replayed up to the target
  // (inclusive) and the cluster promoted there (a new timeline). Archiving is off in the
  // new cluster, so it never writes into the old one's archive.
  static absl::StatusOr<std::unique_ptr<PgCluster>> StartFromBackup(
      const std::string& backup, const RecoveryTarget& target = {}) {
    absl::StatusOr<std::unique_ptr<PgCluster>> made = Prepare();
    if (!made.ok()) return made.status();
    std::unique_ptr<PgCluster> c = *std::move(made);
    if (absl::Status s =
            c->Run({"/bin/cp", "-a", backup, c->data()}, "restore.log", c->as_postgres_);
        !s.ok()) {
      return s;
    }
    std::ofstream conf(c->data() + "/postgresql.conf", std::ios::app);
    conf << "\n# restored from " << backup << " (these lines override the backup's)\n"
         << "unix_socket_directories = '" << c->dir_ << "'\n"
         << "archive_mode = off\n";
    if (!target.archive_dir.empty()) {
      conf << "restore_command = 'cp \"" << target.archive_dir << "/%f\" \"%p\"'\n";
      if (!target.name.empty()) conf << "recovery_target_name = '" << target.name << "'\n";
      if (!target.lsn.empty()) conf << "recovery_target_lsn = '" << target.lsn << "'\n";
      if (!target.time.empty()) conf << "recovery_target_time = '" << target.time << "'\n";
      conf << "recovery_target_inclusive = on\n"
           << "recovery_target_action = 'promote'\n";
    }
    conf.close();
    if (!conf) return absl::InternalError("cannot write the restored postgresql.conf");
    if (!target.archive_dir.empty()) {
      // Targeted recovery from the archive, then promotion.
      if (absl::Status s = c->Run({"/usr/bin/touch", c->data() + "/recovery.signal"}, "restore.log",
                                  c->as_postgres_);
          !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = c->StartServer(); !s.ok()) return s;
    // pg_ctl -w returns once connections are accepted, which in archive recovery (hot
    // standby) comes before the target is reached.
    for (int i = 0;; ++i) {
      absl::StatusOr<std::string> in_recovery = c->Psql("postgres", "SELECT pg_is_in_recovery()");
      if (in_recovery.ok() && absl::StartsWith(*in_recovery, "f")) break;
      if (i >= 600) {
        return absl::DeadlineExceededError(
            absl::StrCat("the restored cluster did not leave recovery within 60 s\nserver.log:\n",
                         c->ServerLog()));
      }
      usleep(100 * 1000);
    }
    return c;
  }

  // pg_basebackup of the running cluster into a new folder `name` inside this cluster's
  // directory; its path. -X stream: the WAL written during the backup is in it, so it is
  // consistent by itself; -c fast: it starts at once, not at the next checkpoint. The
  // server keeps serving meanwhile.
  absl::StatusOr<std::string> BaseBackup(const std::string& name) {
    const std::string path = absl::StrCat(dir_, "/backups/", name);
    if (absl::Status s = Run({"/bin/mkdir", "-p", dir_ + "/backups"}, "backup.log", as_postgres_);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = Tool({"pg_basebackup", "-h", dir_, "-p", absl::StrCat(kPort), "-U",
                               "postgres", "-D", path, "-X", "stream", "-c", "fast", "--no-sync"},
                              "backup.log");
        !s.ok()) {
      return s;
    }
    return path;
  }

  // Ends the current WAL segment and waits (up to 30 s) until the archiver has copied
  // it into archive_dir(): everything committed so far is then in the archive.
  absl::Status ArchiveCurrentWal() {
    absl::StatusOr<std::string> segment =
        Psql("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
    if (!segment.ok()) return segment.status();
    const std::string name(absl::StripTrailingAsciiWhitespace(*segment));
    for (int i = 0; i < 300; ++i) {
      if (std::filesystem::exists(archive_dir() + "/" + name)) return absl::OkStatus();
      usleep(100 * 1000);
    }
    return absl::DeadlineExceededError(
        absl::StrCat("WAL segment ", name, " was not archived within 30 s"));
  }

  // Where archived WAL segments go (Options::archive_wal).
  std::string archive_dir() const { return dir_ + "/wal-archive"; }

  ~PgCluster() {
    if (running_) (void)Stop(/*immediate=*/true);
    // Closing our end tells the watchdog to clean up; wait until it has.
    if (watchdog_pipe_ >= 0) close(watchdog_pipe_);
    if (watchdog_ > 0) waitpid(watchdog_, nullptr, 0);
  }

  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // A libpq connection string for `dbname`.
  std::string ConnInfo(const std::string& dbname) const {
    return absl::StrCat("host=", dir_, " port=", kPort, " user=postgres dbname=", dbname);
  }

  // A new empty database; returns its name.
  absl::StatusOr<std::string> CreateDatabase() {
    const std::string name = absl::StrCat("t", databases_.fetch_add(1) + 1);
    if (absl::Status s = Run(
            {BinDir() + "/createdb", "-h", dir_, "-p", absl::StrCat(kPort), "-U", "postgres", name},
            "createdb.log", /*as_postgres=*/false);
        !s.ok()) {
      return s;
    }
    return name;
  }

  // Stops the server: `immediate` is a crash as far as PostgreSQL is concerned (no
  // checkpoint; recovery from the WAL at the next start), otherwise a fast shutdown.
  absl::Status Stop(bool immediate) {
    absl::Status s =
        Tool({"pg_ctl", "-D", data(), "-m", immediate ? "immediate" : "fast", "-w", "stop"},
             "pg_ctl.log");
    if (s.ok()) running_ = false;
    return s;
  }
  // Starts it again after Stop.
  absl::Status Restart() { return StartServer(); }

  // Runs SQL through psql in `dbname`; returns its output (unaligned, tuples only).
  absl::StatusOr<std::string> Psql(const std::string& dbname, const std::string& sql) {
    const std::string out = absl::StrCat(dir_, "/psql.out");
    if (absl::Status s =
            Run({BinDir() + "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", dir_,
                 "-p", absl::StrCat(kPort), "-U", "postgres", "-d", dbname, "-c", sql},
                "psql.out", /*as_postgres=*/false, /*append=*/false);
        !s.ok()) {
      return s;
    }
    std::ifstream in(out);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  const std::string& dir() const { return dir_; }
  bool running() const { return running_; }
  // The server's log (for a failing test's output).
  std::string ServerLog() const { return ReadFile(dir_ + "/server.log"); }

 private:
  static constexpr int kPort = 5432;  // names the socket file only (no TCP)

  PgCluster() = default;

  // An empty cluster directory (owned by postgres when running as root) and the
  // watchdog that removes it.
  static absl::StatusOr<std::unique_ptr<PgCluster>> Prepare() {
    std::unique_ptr<PgCluster> c(new PgCluster());
    std::string pattern = (std::filesystem::temp_directory_path() / "tellonce-pg-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    c->dir_ = pattern;
    c->as_postgres_ = geteuid() == 0;
    if (c->as_postgres_) {
      struct passwd* pw = getpwnam("postgres");
      if (pw == nullptr) {
        return absl::FailedPreconditionError(
            "running as root, but there is no postgres user to run initdb as "
            "(install postgresql-15)");
      }
      if (chown(c->dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        return absl::InternalError(absl::StrCat("chown ", c->dir_, " failed"));
      }
    }
    chmod(c->dir_.c_str(), 0700);
    c->StartWatchdog();
    return c;
  }

  std::string data() const { return dir_ + "/data"; }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  absl::Status StartServer() {
    absl::Status s =
        Tool({"pg_ctl", "-D", data(), "-l", dir_ + "/server.log", "-w", "-t", "60", "start"},
             "pg_ctl.log");
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat(s.message(), "\nserver.log:\n", ServerLog()));
    }
    running_ = true;
    return absl::OkStatus();
  }

  // A PostgreSQL server program, as the postgres user when running as root.
  absl::Status Tool(std::vector<std::string> args, const std::string& log) {
    args[0] = BinDir() + "/" + args[0];
    return Run(std::move(args), log, as_postgres_);
  }

  // Runs a program to completion with stdout and stderr appended to dir/<log>.
  absl::Status Run(std::vector<std::string> args, const std::string& log, bool as_postgres,
                   bool append = true) {
    if (as_postgres) {
      args.insert(args.begin(), {"/usr/sbin/runuser", "-u", "postgres", "--"});
    }
    const std::string log_path = dir_ + "/" + log;
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) return absl::InternalError("fork failed");
    if (pid == 0) {
      const int fd =
          open(log_path.c_str(), O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0666);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      const int null = open("/dev/null", O_RDONLY);
      if (null >= 0) dup2(null, 0);
      execv(argv[0], argv.data());
      _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
    std::string output = ReadFile(log_path);
    if (output.size() > 4000) output = output.substr(output.size() - 4000);
    return absl::InternalError(absl::StrCat(absl::StrJoin(args, " "), " failed (status ", status,
                                            "); ", log_path, ":\n", output));
  }

  void StartWatchdog() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    std::string stop = absl::StrCat(as_postgres_ ? "/usr/sbin/runuser -u postgres -- " : "",
                                    BinDir(), "/pg_ctl -D '", data(),
                                    "' -m immediate -w stop >/dev/null 2>&1; rm -rf '", dir_, "'");
    std::string script = absl::StrCat("read -r _; ", stop);
    std::vector<std::string> args = {"/bin/sh", "-c", script};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
      close(fds[0]);
      close(fds[1]);
      return;
    }
    if (pid == 0) {
      setsid();  // outlives a kill of the test's process group
      signal(SIGINT, SIG_IGN);
      signal(SIGTERM, SIG_IGN);
      dup2(fds[0], 0);
      const int null = open("/dev/null", O_WRONLY);
      if (null >= 0) {
        dup2(null, 1);
        dup2(null, 2);
      }
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[0]);
    watchdog_pipe_ = fds[1];
    watchdog_ = pid;
  }

  std::string dir_;
  bool as_postgres_ = false;
  bool running_ = false;
  int watchdog_pipe_ = -1;
  pid_t watchdog_ = -1;
  std::atomic<int> databases_{0};
};

}  // namespace tellonce::testing

#endif  // TELLONCE_TESTS_TESTING_PG_CLUSTER_H_
