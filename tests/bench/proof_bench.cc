// proof_bench: in-process latency of the transparency log's proofs over a large access
// log. Reports numbers, decides nothing.
//
//   BM_InclusionProof    TransparencyLog::InclusionProof of a random event in the tree
//                        of all TELLONCE_BENCH_EVENTS events (default 1,000,000)
//   BM_ConsistencyProof  TransparencyLog::ConsistencyProof from a random older size to
//                        the whole tree
// Counters p50_us / p99_us are per-proof latencies measured here. The events are
// appended once, before the first benchmark, through the real AccessLog (CommitQueue
// with sync=false: a bulk load) and hashed by the real TransparencyLog thread; the
// append and hashing rates go to stderr. The database lives in a temporary directory
// under $TMPDIR, removed at exit.

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "broker/access_log.h"
#include "broker/transparency.h"
#include "certs/signing.h"
#include "consent/consent_store.h"
#include "storage/rocksdb/rocks_storage.h"
#include "google/protobuf/util/time_util.h"
#include "tests/bench/benchmark_main.h"
#include "tests/bench/in_flight.h"
#include "tests/bench/latency.h"
#include "tests/bench/synthetic.h"

namespace {

using tellonce::broker::AccessLog;
using tellonce::broker::TransparencyLog;

uint64_t EventCount() {
  uint64_t n = 1'000'000;
  if (const char* env = getenv("TELLONCE_BENCH_EVENTS")) {
    if (!absl::SimpleAtoi(env, &n) || n < 2) n = 1'000'000;
  }
  return n;
}

// A fresh ECDSA P-256 key, as the broker's checkpoints are signed with.
tellonce::certs::SigningKey NewSigningKey() {
  EVP_PKEY* pkey = EVP_EC_gen("P-256");
  BIO* bio = BIO_new(BIO_s_mem());
  if (pkey == nullptr || bio == nullptr ||
      PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    std::fprintf(stderr, "proof_bench: cannot generate a P-256 key\n");
    std::exit(1);
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  absl::StatusOr<tellonce::certs::SigningKey> key =
      tellonce::certs::SigningKey::FromPem(std::string_view(data, static_cast<size_t>(size)));
  BIO_free(bio);
  EVP_PKEY_free(pkey);
  if (!key.ok()) {
    std::fprintf(stderr, "proof_bench: %s\n", key.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(key);
}

// An event shaped like the exchange's: one allowed fetch of one attribute.
tellonce::v1::AccessEvent MakeEvent(uint64_t n, absl::Time now) {
  tellonce::v1::AccessEvent e;
  *e.mutable_at() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(now));
  e.set_exchange_id(tellonce::consent::NewConsentId(now));
  e.set_consumer("tax");
  e.set_provider("bank");
  e.set_citizen_id(tellonce::bench::CitizenId(static_cast<int64_t>(n % 1'000'000)));
  e.add_attributes("bank.interest_paid");
  e.set_purpose("TAX_DEDUCTION_CHECK");
  e.mutable_basis()->set_consent_id(tellonce::consent::NewConsentId(now));
  e.set_outcome(tellonce::v1::AccessEvent::ALLOWED);
  e.set_code(tellonce::v1::RESULT_OK);
  return e;
}

// The log with every event appended and hashed.
struct LogEnv {
  std::string path;
  std::unique_ptr<tellonce::storage::Storage> db;
  std::unique_ptr<AccessLog> log;
  std::unique_ptr<TransparencyLog> tree;
  uint64_t size = 0;

  ~LogEnv() {
    if (db != nullptr) db->Close();
    tree.reset();
    log.reset();
    db.reset();
    std::filesystem::remove_all(path);
  }
};

std::unique_ptr<LogEnv> g_env;
std::once_flag g_once;

void Fail(const absl::Status& s) {
  std::fprintf(stderr, "proof_bench: %s\n", s.ToString().c_str());
  std::exit(1);
}

LogEnv& Env() {
  std::call_once(g_once, [] {
    g_env = std::make_unique<LogEnv>();
    LogEnv& env = *g_env;
    env.path = tellonce::bench::MakeTempDir("proof_bench");
    absl::StatusOr<std::unique_ptr<tellonce::storage::Storage>> db =
        tellonce::storage::OpenRocksStorage({.path = env.path, .sync = false});
    if (!db.ok()) Fail(db.status());
    env.db = *std::move(db);
    env.log = std::make_unique<AccessLog>(env.db.get());
    absl::StatusOr<std::unique_ptr<TransparencyLog>> tree = TransparencyLog::Start(
        env.db.get(), env.log.get(), NewSigningKey(),
        {.issuer = "spiffe://bench.local/broker",
         .checkpoint_interval = absl::Hours(1),
         .fresh_interval = absl::Seconds(1),
         .poll_interval = absl::Seconds(1),
         .on_signed = nullptr});
    if (!tree.ok()) Fail(tree.status());
    env.tree = *std::move(tree);
    env.db->SetAppendListener([t = env.tree.get()] { t->Notify(); });

    // Appends in calls of a few events each (an exchange appends one to a few), many
    // in flight, as concurrent requests would.
    const uint64_t n = EventCount();
    constexpr uint64_t kPerAppend = 4;
    const absl::Time now = absl::Now();
    tellonce::bench::InFlight in_flight(/*limit=*/4096);
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t k = 0; k < n; k += kPerAppend) {
      std::vector<tellonce::v1::AccessEvent> events;
      for (uint64_t i = k; i < std::min(n, k + kPerAppend); ++i)
        events.push_back(MakeEvent(i, now));
      in_flight.Add();
      env.log->Append(std::move(events),
                      [&](absl::Status r) { in_flight.Done(r); });
    }
    if (absl::Status s = in_flight.WaitForNone(); !s.ok()) Fail(s);
    const auto appended = std::chrono::steady_clock::now();
    while (env.tree->tree_size() < n) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const auto hashed = std::chrono::steady_clock::now();
    env.size = n;
    auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
    std::fprintf(stderr,
                 "proof_bench: appended %llu events in %.1f s (%.0f/s, unsynced); the tree "
                 "caught up %.1f s later\n",
                 static_cast<unsigned long long>(n), secs(appended - start),
                 n / secs(appended - start), secs(hashed - appended));
  });
  return *g_env;
}

template <typename Proof>
void MeasureProofs(benchmark::State& state, Proof proof) {
  LogEnv& env = Env();
  std::mt19937_64 rng(7);
  std::vector<double> micros;
  micros.reserve(1 << 20);
  for (auto _ : state) {
    const uint64_t r = rng();
    const auto start = std::chrono::steady_clock::now();
    absl::Status s = proof(env, r);
    const auto end = std::chrono::steady_clock::now();
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    micros.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  state.counters["events"] = static_cast<double>(env.size);
  state.counters["p50_us"] = tellonce::bench::Percentile(micros, 0.50);
  state.counters["p99_us"] = tellonce::bench::Percentile(micros, 0.99);
  state.SetItemsProcessed(state.iterations());
}

void BM_InclusionProof(benchmark::State& state) {
  MeasureProofs(state, [](LogEnv& env, uint64_t r) {
    auto proof = env.tree->InclusionProof(r % env.size, env.size);
    if (proof.ok()) benchmark::DoNotOptimize(proof->path_size());
    return proof.status();
  });
}
BENCHMARK(BM_InclusionProof);

void BM_ConsistencyProof(benchmark::State& state) {
  MeasureProofs(state, [](LogEnv& env, uint64_t r) {
    auto proof = env.tree->ConsistencyProof(1 + r % env.size, env.size);
    if (proof.ok()) benchmark::DoNotOptimize(proof->proof_size());
    return proof.status();
  });
}
BENCHMARK(BM_ConsistencyProof);

}  // namespace

int main(int argc, char** argv) {
  return tellonce::bench::RunBenchmarks(argc, argv, [] { g_env.reset(); });
}
