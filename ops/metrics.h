#ifndef TELLONCE_OPS_METRICS_H_
#define TELLONCE_OPS_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tellonce::ops {

// Design: the metrics a program exposes on its admin listener's /metrics, in the
// Prometheus text format (version 0.0.4). Two ways in:
//
//  - Instruments a hot path updates: Counter, Gauge, Histogram. Each update is one or
//    two relaxed atomic operations, no lock and no allocation. They belong to a family
//    (name, help, label names); `With(label values)` finds or makes a child under the
//    family's lock, so a hot path looks its children up once and keeps the reference
//    (children live as long as the registry).
//  - Collectors, run at scrape time, for what is cheaper to read than to count:
//    queue depths, the log's size, certificate expiry, counters a component already
//    keeps.
//
// Names follow Prometheus conventions (snake_case, base units, `_total` on counters,
// `_seconds`, `_bytes`). Label values are escaped. Never put a citizen id or an
// attribute value in a label: label values here are agency ids, method names, codes.
// Thread-safe.

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into fixed buckets (upper bounds, inclusive, ascending) plus
// +Inf, and keeps their sum.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);

  const std::vector<double>& bounds() const { return bounds_; }
  // Per bucket (not cumulative), bounds().size() + 1 of them (the last is +Inf).
  std::vector<uint64_t> BucketCounts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

// Latency buckets in seconds, 100 µs to 10 s.
const std::vector<double>& LatencyBuckets();

using Labels = std::vector<std::pair<std::string, std::string>>;

// Writes samples in the text format; collectors use it. Samples of one name must be
// written together (one Family call, then its samples).
class MetricsWriter {
 public:
  // Starts a family: "# HELP" and "# TYPE" (counter, gauge, histogram, untyped).
  void Family(std::string_view name, std::string_view help, std::string_view type);
  // One sample line: name{labels} value.
  void Sample(std::string_view name, const Labels& labels, double value);
  void Sample(std::string_view name, const Labels& labels, uint64_t value);
  // A gauge family with one unlabelled sample.
  void Gauge(std::string_view name, std::string_view help, double value);
  // A counter family with one unlabelled sample.
  void Counter(std::string_view name, std::string_view help, uint64_t value);

  std::string Take() { return std::move(out_); }

 private:
  void Name(std::string_view name, const Labels& labels);
  std::string out_;
};

template <typename M>
class Family;

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();

  // Adds a family. The name must be new. The returned family lives as long as the
  // registry.
  Family<Counter>& AddCounter(std::string name, std::string help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(std::string name, std::string help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>& AddHistogram(std::string name, std::string help,
                                  std::vector<std::string> label_names, std::vector<double> bounds);

  // Runs `collect` on every scrape, after the families. It must not block for long,
  // and must not call back into the registry.
  void AddCollector(std::function<void(MetricsWriter&)> collect) ABSL_LOCKS_EXCLUDED(mu_);

  // The whole exposition, text format 0.0.4.
  std::string Render() const ABSL_LOCKS_EXCLUDED(mu_);

  // The standard process_* metrics (CPU, resident and virtual memory, open and max
  // fds, start time), read from /proc at scrape time.
  void AddProcessCollector();

 private:
  struct FamilyBase;
  template <typename M>
  Family<M>& Add(std::string name, std::string help, std::vector<std::string> label_names,
                 std::function<std::unique_ptr<M>()> make, const char* type);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(MetricsWriter&)>> collectors_ ABSL_GUARDED_BY(mu_);
};

// A metric's children by label values.
template <typename M>
class Family {
 public:
  // The child for these label values (as many as the family's label names), made on
  // first use. Takes the family's lock: look up once, keep the reference.
  M& With(std::initializer_list<std::string_view> values) ABSL_LOCKS_EXCLUDED(mu_);
  // The child of a family without labels.
  M& Get() { return With({}); }

 private:
  friend class MetricsRegistry;
  Family(std::vector<std::string> label_names, std::function<std::unique_ptr<M>()> make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}

  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<M>()> make_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tellonce::ops

#endif  // TELLONCE_OPS_METRICS_H_
