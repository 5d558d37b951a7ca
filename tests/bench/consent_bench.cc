// consent_bench: in-process microbenchmarks of the RocksDB consent store. Reports
// numbers, decides nothing.
//
//   BM_FindActive/<kind>  the access-decision lookup (FindActive) for a random citizen,
//                         on a database preloaded with TELLONCE_BENCH_CONSENTS consents
//                         (default 1,000,000; two per citizen). kind 0: the citizen has
//                         a consent for that consumer; 1: the citizen has consents, but
//                         not for that consumer; 2: an unknown citizen. Counters p50_us,
//                         p99_us are per-lookup latencies measured here.
//   BM_CrowdedCitizen/<n> FindActive for one citizen holding n ACTIVE consents for the
//                         same consumer (issue 13: 20,000 made that citizen's exchanges
//                         slow). The consents are loaded with the per-consumer cap off,
//                         as in data written before it; FindActive reads at most
//                         kMaxActiveScanned entries, and with the cap (default 100) a
//                         store never holds more than that many.
//   BM_DurableGrant       Grant through the store and its CommitQueue with sync=true
//                         (one fsync per commit group), closed loop at 1/16/64 threads.
//
// Data lives in a temporary directory under $TMPDIR, removed at exit. Set
// TELLONCE_BENCH_CACHE_DIR to keep the preloaded database there and reuse it on the
// next run with the same TELLONCE_BENCH_CONSENTS.

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "consent/consent_store.h"
#include "rocksdb/db.h"
#include "storage/rocksdb/rocks_storage.h"
#include "tests/bench/benchmark_main.h"
#include "tests/bench/latency.h"
#include "tests/bench/synthetic.h"

namespace {

using tellonce::consent::ConsentStore;
using tellonce::v1::Consent;
using tellonce::v1::StoredConsent;

constexpr int kConsumers = 20;

int64_t ConsentCount() {
  int64_t n = 1'000'000;
  if (const char* env = getenv("TELLONCE_BENCH_CONSENTS")) {
    if (!absl::SimpleAtoi(env, &n) || n < 2) n = 1'000'000;
  }
  return n;
}

using tellonce::bench::CitizenId;
std::string Consumer(int64_t i) { return absl::StrCat("agency-", i % kConsumers); }

// A record shaped like what the registry stores, with a receipt of realistic size.
StoredConsent MakeRecord(const std::string& citizen, const std::string& consumer,
                         const std::string& request_id, absl::Time now) {
  return tellonce::bench::MakeConsentRecord(
      citizen, {.consumer = consumer, .attributes = {"person.address", "tax.annual_income"}},
      request_id, now);
}

// An open store over a database directory.
struct StoreEnv {
  std::string path;
  bool remove_at_exit = true;
  std::unique_ptr<tellonce::storage::Storage> db;
  std::unique_ptr<ConsentStore> store;

  StoreEnv(std::string dir, bool remove, bool sync) : path(std::move(dir)), remove_at_exit(remove) {
    absl::StatusOr<std::unique_ptr<tellonce::storage::Storage>> opened =
        tellonce::storage::OpenRocksStorage({.path = path, .sync = sync});
    if (!opened.ok()) {
      std::fprintf(stderr, "open %s: %s\n", path.c_str(), opened.status().ToString().c_str());
      std::exit(1);
    }
    db = *std::move(opened);
    store = tellonce::consent::NewConsentStore(db.get(), {.max_active_per_consumer = 0});
  }
  ~StoreEnv() {
    store.reset();
    db.reset();
    if (remove_at_exit) std::filesystem::remove_all(path);
  }
};

std::unique_ptr<StoreEnv> g_lookup;
std::unique_ptr<StoreEnv> g_grant;
std::once_flag g_lookup_once, g_grant_once;

// Loads `n` consents (two per citizen, consumers i and i+1) through the real store,
// without syncing, then flushes and compacts so lookups read SST files with filters.
void Preload(StoreEnv& env, int64_t n) {
  const absl::Time now = absl::Now();
  const auto start = std::chrono::steady_clock::now();
  absl::Status loaded = tellonce::bench::BulkGrant(*env.store, *env.db, n, [&](int64_t k) {
    const int64_t citizen = k / 2;
    return MakeRecord(CitizenId(citizen), Consumer(citizen + k % 2), absl::StrCat("load-", k), now);
  });
  if (!loaded.ok()) {
    std::fprintf(stderr, "preload: %s\n", loaded.ToString().c_str());
    std::exit(1);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "preloaded %lld consents in %.1f s (%.0f/s) into %s\n",
               static_cast<long long>(n), seconds, n / seconds, env.path.c_str());
}

StoreEnv& LookupEnv() {
  std::call_once(g_lookup_once, [] {
    const int64_t n = ConsentCount();
    const char* cache = getenv("TELLONCE_BENCH_CACHE_DIR");
    if (cache != nullptr && *cache != '\0') {
      const std::string path = absl::StrCat(cache, "/consents-", n);
      const std::string marker = path + ".loaded";
      const bool loaded = std::filesystem::exists(marker);
      if (!loaded) std::filesystem::remove_all(path);
      std::filesystem::create_directories(path);
      g_lookup = std::make_unique<StoreEnv>(path, false, /*sync=*/false);
      if (loaded) {
        std::fprintf(stderr, "reusing %lld preloaded consents in %s\n", static_cast<long long>(n),
                     path.c_str());
      } else {
        Preload(*g_lookup, n);
        std::ofstream(marker) << n << "\n";
      }
    } else {
      g_lookup = std::make_unique<StoreEnv>(tellonce::bench::MakeTempDir("consent_bench_lookup"),
                                            true, /*sync=*/false);
      Preload(*g_lookup, n);
    }
  });
  return *g_lookup;
}

StoreEnv& GrantEnv() {
  std::call_once(g_grant_once, [] {
    g_grant = std::make_unique<StoreEnv>(tellonce::bench::MakeTempDir("consent_bench_grant"), true,
                                         /*sync=*/true);
  });
  return *g_grant;
}

using tellonce::bench::Percentile;

void BM_FindActive(benchmark::State& state) {
  StoreEnv& env = LookupEnv();
  const int kind = static_cast<int>(state.range(0));
  const int64_t citizens = ConsentCount() / 2;
  std::mt19937_64 rng(42 + kind);
  std::uniform_int_distribution<int64_t> pick(0, citizens - 1);
  std::vector<double> micros;
  micros.reserve(1 << 20);
  int64_t found = 0;
  for (auto _ : state) {
    const int64_t i = pick(rng);
    std::string citizen = kind == 2 ? CitizenId(citizens + i) : CitizenId(i);
    std::string consumer = kind == 1 ? Consumer(i + 2) : Consumer(i + (rng() & 1));
    const absl::Time now = absl::Now();
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::vector<Consent>> active = env.store->FindActive(citizen, consumer, now);
    const auto end = std::chrono::steady_clock::now();
    if (!active.ok()) {
      state.SkipWithError(active.status().ToString().c_str());
      break;
    }
    found += static_cast<int64_t>(active->size());
    micros.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  state.counters["p50_us"] = Percentile(micros, 0.50);
  state.counters["p99_us"] = Percentile(micros, 0.99);
  state.counters["found_per_lookup"] =
      state.iterations() > 0 ? static_cast<double>(found) / state.iterations() : 0;
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FindActive)->Arg(0)->Arg(1)->Arg(2)->ArgName("kind");

void BM_CrowdedCitizen(benchmark::State& state) {
  const int64_t n = state.range(0);
  StoreEnv env(tellonce::bench::MakeTempDir("consent_bench_crowded"), true,
               /*sync=*/false);
  const absl::Time now = absl::Now();
  absl::Status loaded = tellonce::bench::BulkGrant(*env.store, *env.db, n, [&](int64_t k) {
    return MakeRecord(CitizenId(7), Consumer(1), absl::StrCat("crowd-", k), now);
  });
  if (!loaded.ok()) {
    state.SkipWithError(loaded.ToString().c_str());
    return;
  }
  std::vector<double> micros;
  int64_t found = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::vector<Consent>> active =
        env.store->FindActive(CitizenId(7), Consumer(1), absl::Now());
    const auto end = std::chrono::steady_clock::now();
    if (!active.ok()) {
      state.SkipWithError(active.status().ToString().c_str());
      break;
    }
    found += static_cast<int64_t>(active->size());
    micros.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  state.counters["p50_us"] = Percentile(micros, 0.50);
  state.counters["p99_us"] = Percentile(micros, 0.99);
  state.counters["found_per_lookup"] =
      state.iterations() > 0 ? static_cast<double>(found) / state.iterations() : 0;
}
BENCHMARK(BM_CrowdedCitizen)->Arg(2)->Arg(100)->Arg(20000)->Unit(benchmark::kMicrosecond);

void BM_DurableGrant(benchmark::State& state) {
  StoreEnv& env = GrantEnv();
  std::vector<double> micros;
  micros.reserve(1 << 16);
  int64_t n = 0;
  const std::string prefix = absl::StrCat("t", state.threads(), "-", state.thread_index(), "-");
  for (auto _ : state) {
    const absl::Time now = absl::Now();
    StoredConsent record = MakeRecord(CitizenId(n % 100000), Consumer(n),
                                      absl::StrCat(prefix, n, "-", absl::ToUnixNanos(now)), now);
    ++n;
    std::promise<absl::Status> done;
    const auto start = std::chrono::steady_clock::now();
    env.store->Grant(std::move(record), [&](absl::StatusOr<ConsentStore::GrantOutcome> r) {
      done.set_value(r.status());
    });
    absl::Status status = done.get_future().get();
    const auto end = std::chrono::steady_clock::now();
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
    micros.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  state.counters["p50_us"] =
      benchmark::Counter(Percentile(micros, 0.50), benchmark::Counter::kAvgThreads);
  state.counters["p99_us"] =
      benchmark::Counter(Percentile(micros, 0.99), benchmark::Counter::kAvgThreads);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DurableGrant)->Threads(1)->Threads(16)->Threads(64)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  return tellonce::bench::RunBenchmarks(argc, argv, [] {
    g_lookup.reset();
    g_grant.reset();
  });
}
