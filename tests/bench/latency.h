#ifndef TELLONCE_TESTS_BENCH_LATENCY_H_
#define TELLONCE_TESTS_BENCH_LATENCY_H_

// Latency recording for the benchmarks.

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <vector>

namespace tellonce::bench {

// A log-linear histogram of durations in nanoseconds, 128 buckets per power of two
// (under 0.8% error), with lock-free recording: Record is one relaxed atomic increment,
// so many completion threads can share one histogram. Percentile reads are meant for
// after the recording threads are done. 8,192 counters (64 KiB).
class LatencyHistogram {
 public:
  void Record(int64_t nanos) {
    counts_[Bucket(nanos < 1 ? 1 : static_cast<uint64_t>(nanos))].fetch_add(
        1, std::memory_order_relaxed);
  }

  uint64_t count() const {
    uint64_t total = 0;
    for (const auto& c : counts_) total += c.load(std::memory_order_relaxed);
    return total;
  }

  // The value below which a fraction `p` (0..1) of the recordings fall, in
  // nanoseconds (the middle of its bucket); 0 when empty.
  double Percentile(double p) const {
    const uint64_t total = count();
    if (total == 0) return 0;
    const uint64_t rank = std::min<uint64_t>(total - 1, static_cast<uint64_t>(p * total));
    uint64_t seen = 0;
    for (size_t b = 0; b < counts_.size(); ++b) {
      seen += counts_[b].load(std::memory_order_relaxed);
      if (seen > rank) return (Lower(b) + Lower(b + 1)) / 2.0;
    }
    return Lower(counts_.size());
  }

 private:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;

  // Values below kSub map to themselves; above, by exponent and the next 7 bits.
  static size_t Bucket(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    const int exponent = 63 - std::countl_zero(v);  // >= kSubBits
    const uint64_t mantissa = (v >> (exponent - kSubBits)) - kSub;
    return static_cast<size_t>((exponent - kSubBits + 1) * kSub + mantissa);
  }
  // Smallest value of bucket `b`.
  static double Lower(size_t b) {
    if (b < kSub) return static_cast<double>(b);
    const int exponent = static_cast<int>(b / kSub) - 1 + kSubBits;
    const uint64_t mantissa = b % kSub + kSub;
    return static_cast<double>(mantissa) *
           static_cast<double>(uint64_t{1} << (exponent - kSubBits));
  }

  std::array<std::atomic<uint64_t>, 64 * kSub> counts_{};
};

// The `p` quantile (0..1) of `v`, reordering it; 0 when empty.
inline double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

}  // namespace tellonce::bench

#endif  // TELLONCE_TESTS_BENCH_LATENCY_H_
