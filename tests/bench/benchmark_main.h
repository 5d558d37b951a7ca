#ifndef TELLONCE_TESTS_BENCH_BENCHMARK_MAIN_H_
#define TELLONCE_TESTS_BENCH_BENCHMARK_MAIN_H_

#include <functional>

#include "benchmark/benchmark.h"

namespace tellonce::bench {

// main() of a Google Benchmark program whose benchmarks share preloaded state: runs the
// benchmarks named on the command line, then `teardown` (close databases, remove
// temporary directories) before static destructors run.
inline int RunBenchmarks(int argc, char** argv, const std::function<void()>& teardown) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  teardown();
  return 0;
}

}  // namespace tellonce::bench

#endif  // TELLONCE_TESTS_BENCH_BENCHMARK_MAIN_H_
