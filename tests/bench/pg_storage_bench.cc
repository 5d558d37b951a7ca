// pg_storage_bench: the PostgreSQL backend's commit path in-process, to choose how access
// events are numbered (storage/postgres/postgres_storage.h, Numbering).
//
//   pg_storage_bench [--seconds 5] [--threads 16] [--replicas 1,2,3] [--events 1]
//
// Starts a throwaway cluster with fsync on (tests/testing/pg_cluster.h), then for each
// numbering mode (kSequencer: queue at commit, number in the sequencer; kAtCommit: a
// locked counter row just before COMMIT) and each replica count R: a fresh database, R
// PostgresStorage objects (each with its own pools and commit threads, as R broker
// processes would have), --threads closed-loop writers per replica, each submitting one
// work that appends --events access events (an exchange's append), and replica 0
// running the sequencer every 50 ms. One line per run: appends/s, works per COMMIT,
// p50/p99 of a work's latency, this process's CPU per work (the brokers' storage side)
// and PostgreSQL's (the postmaster's children), and how far numbering lagged.

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "proto/time.h"
#include "storage/postgres/postgres_storage.h"
#include "tests/bench/flags.h"
#include "tests/bench/process_cpu.h"
#include "tests/testing/pg_cluster.h"

namespace {

using tellonce::storage::postgres::PostgresOptions;

double SelfCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// The postmaster's children (backends, WAL writer, checkpointer...) and itself.
std::vector<int> PostgresPids(const std::string& data_dir) {
  std::ifstream in(data_dir + "/postmaster.pid");
  int postmaster = 0;
  in >> postmaster;
  std::vector<int> pids = {postmaster};
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(line.substr(close + 2), ' ');
    int ppid = 0;
    if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid) && ppid == postmaster) {
      pids.push_back(pid);
    }
  }
  return pids;
}

double CpuOf(const std::vector<int>& pids) {
  double total = 0;
  for (int pid : pids) total += std::max(0.0, tellonce::bench::ProcessCpuSeconds(pid));
  return total;
}

tellonce::v1::AccessEvent Event(int thread, int n) {
  tellonce::v1::AccessEvent e;
  *e.mutable_at() = tellonce::ToProtoTime(absl::Now());
  e.set_exchange_id(absl::StrCat("x-", thread, "-", n));
  e.set_consumer("tax");
  e.set_provider("bank");
  e.set_citizen_id(absl::StrCat("3800108", 1000 + (n % 9000)));
  e.add_attributes("bank.interest_paid");
  e.set_purpose("TAX_DEDUCTION_CHECK");
  e.mutable_basis()->set_consent_id("01JDZQ8Y2Y7M3K4N5P6Q7R8S9T");
  e.set_outcome(tellonce::v1::AccessEvent::ALLOWED);
  e.set_code(tellonce::v1::RESULT_OK);
  return e;
}

struct Flags {
  int64_t seconds = 5;
  int64_t threads = 16;
  std::string replicas = "1,2,3";
  int64_t events = 1;
};

}  // namespace

int main(int argc, char** argv) {
  constexpr char kUsage[] =
      "usage: pg_storage_bench [--seconds 5] [--threads 16] [--replicas 1,2,3] [--events 1]\n";
  Flags flags;
  using tellonce::bench::Number;
  using tellonce::bench::Text;
  if (!tellonce::bench::ParseFlags(argc, argv,
                                   {{"--seconds", Number(&flags.seconds)},
                                    {"--threads", Number(&flags.threads)},
                                    {"--replicas", Text(&flags.replicas)},
                                    {"--events", Number(&flags.events)}},
                                   kUsage)) {
    return 2;
  }
  std::vector<int> replica_counts;
  for (absl::string_view r : absl::StrSplit(flags.replicas, ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(r, &n) || n < 1) {
      std::fputs(kUsage, stderr);
      return 2;
    }
    replica_counts.push_back(n);
  }
  absl::StatusOr<std::unique_ptr<tellonce::testing::PgCluster>> cluster =
      tellonce::testing::PgCluster::Start({.fsync = true, .settings = {}});
  if (!cluster.ok()) {
    std::fprintf(stderr, "pg_storage_bench: %s\n", cluster.status().ToString().c_str());
    return 1;
  }
  const std::string data_dir = (*cluster)->dir() + "/data";

  for (PostgresOptions::Numbering numbering :
       {PostgresOptions::Numbering::kSequencer, PostgresOptions::Numbering::kAtCommit}) {
    for (int replicas : replica_counts) {
      absl::StatusOr<std::string> db = (*cluster)->CreateDatabase();
      if (!db.ok()) {
        std::fprintf(stderr, "pg_storage_bench: %s\n", db.status().ToString().c_str());
        return 1;
      }
      std::vector<std::unique_ptr<tellonce::storage::postgres::PostgresStorage>> storages;
      for (int r = 0; r < replicas; ++r) {
        PostgresOptions o;
        o.conninfo = (*cluster)->ConnInfo(*db);
        o.numbering = numbering;
        o.gather = absl::Microseconds(250);  // the broker's default group_commit_wait
        absl::StatusOr<std::unique_ptr<tellonce::storage::postgres::PostgresStorage>> s =
            tellonce::storage::postgres::OpenPostgresStorage(o);
        if (!s.ok()) {
          std::fprintf(stderr, "pg_storage_bench: %s\n", s.status().ToString().c_str());
          return 1;
        }
        storages.push_back(*std::move(s));
      }
      std::atomic<bool> measuring{false}, stop{false};
      absl::Mutex mu;
      std::vector<double> latencies;
      std::atomic<int64_t> works{0}, errors{0};
      std::atomic<int64_t> max_lag{0};
      std::thread sequencer([&] {
        while (!stop.load()) {
          absl::StatusOr<bool> held = storages[0]->tree().AcquireSequencer();
          if (held.ok() && *held) (void)storages[0]->tree().Sequence();
          absl::SleepFor(absl::Milliseconds(50));
        }
      });
      std::vector<std::thread> writers;
      for (int r = 0; r < replicas; ++r) {
        for (int t = 0; t < flags.threads; ++t) {
          writers.emplace_back([&, r, t] {
            std::vector<double> mine;
            for (int n = 0; !stop.load(); ++n) {
              std::vector<tellonce::v1::AccessEvent> batch;
              for (int k = 0; k < flags.events; ++k) batch.push_back(Event(r * 1000 + t, n));
              const absl::Time start = absl::Now();
              absl::Status s = storages[r]->Run(
                  [&](tellonce::storage::Transaction& tx) { return tx.AppendAccessEvents(batch); });
              if (!measuring.load()) continue;
              if (s.ok()) {
                ++works;
                mine.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
              } else {
                ++errors;
              }
            }
            absl::MutexLock lock(&mu);
            latencies.insert(latencies.end(), mine.begin(), mine.end());
          });
        }
      }
      absl::SleepFor(absl::Seconds(1));  // warm-up: connections open, statements prepared
      std::vector<int> pg_pids = PostgresPids(data_dir);
      uint64_t groups0 = 0, ops0 = 0;
      for (auto& s : storages) {
        groups0 += s->commit_counts().groups;
        ops0 += s->commit_counts().operations;
      }
      const double self0 = SelfCpuSeconds(), pg0 = CpuOf(pg_pids);
      const absl::Time t0 = absl::Now();
      measuring = true;
      absl::SleepFor(absl::Seconds(flags.seconds));
      measuring = false;
      const double elapsed = absl::ToDoubleSeconds(absl::Now() - t0);
      const double self1 = SelfCpuSeconds(), pg1 = CpuOf(pg_pids);
      uint64_t groups1 = 0, ops1 = 0;
      for (auto& s : storages) {
        groups1 += s->commit_counts().groups;
        ops1 += s->commit_counts().operations;
      }
      // How many committed events wait to be numbered right now.
      absl::StatusOr<std::string> queued =
          (*cluster)->Psql(*db, "SELECT count(*) FROM access_queue");
      stop = true;
      for (std::thread& w : writers) w.join();
      sequencer.join();
      std::sort(latencies.begin(), latencies.end());
      auto pct = [&](double p) {
        return latencies.empty() ? 0.0
                                 : latencies[std::min(latencies.size() - 1,
                                                      static_cast<size_t>(p * latencies.size()))];
      };
      const double n = static_cast<double>(std::max<int64_t>(works.load(), 1));
      std::printf(
          "numbering=%s replicas=%d writers=%lld appends_per_s=%.0f works_per_commit=%.1f "
          "p50_ms=%.2f p99_ms=%.2f errors=%lld client_cpu_us_per_work=%.1f "
          "postgres_cpu_us_per_work=%.1f queued_at_end=%s\n",
          numbering == PostgresOptions::Numbering::kSequencer ? "sequencer" : "at-commit", replicas,
          static_cast<long long>(replicas * flags.threads), works.load() * flags.events / elapsed,
          groups1 > groups0 ? static_cast<double>(ops1 - ops0) / (groups1 - groups0) : 0.0,
          pct(0.5), pct(0.99), static_cast<long long>(errors.load()), (self1 - self0) * 1e6 / n,
          (pg1 - pg0) * 1e6 / n,
          queued.ok() ? std::string(absl::StripTrailingAsciiWhitespace(*queued)).c_str() : "?");
      std::fflush(stdout);
      storages.clear();
      (void)(*cluster)->Psql("postgres", "DROP DATABASE " + *db);
    }
  }
  return 0;
}
