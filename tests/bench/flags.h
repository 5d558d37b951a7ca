#ifndef TELLONCE_TESTS_BENCH_FLAGS_H_
#define TELLONCE_TESTS_BENCH_FLAGS_H_

// Command-line flags of the benchmark programs: "--name value" pairs.

#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <type_traits>

#include "absl/strings/numbers.h"

namespace tellonce::bench {

// Stores a flag's value; false when the value is malformed.
using FlagHandler = std::function<bool(const std::string&)>;

inline FlagHandler Text(std::string* out) {
  return [out](const std::string& v) {
    *out = v;
    return true;
  };
}

template <typename T>
FlagHandler Number(T* out) {
  return [out](const std::string& v) {
    if constexpr (std::is_floating_point_v<T>) {
      return absl::SimpleAtod(v, out);
    } else {
      return absl::SimpleAtoi(v, out);
    }
  };
}

// Parses argv[1..] as "--name value" pairs, each name one of `handlers`. On an unknown
// flag, a missing or malformed value: prints what is wrong and `usage` to stderr and
// returns false.
inline bool ParseFlags(int argc, char** argv, const std::map<std::string, FlagHandler>& handlers,
                       const char* usage) {
  for (int i = 1; i < argc; i += 2) {
    auto it = handlers.find(argv[i]);
    if (it == handlers.end()) {
      std::fprintf(stderr, "unknown flag %s\n%s", argv[i], usage);
      return false;
    }
    if (i + 1 >= argc || !it->second(argv[i + 1])) {
      std::fprintf(stderr, "bad or missing value for %s\n%s", argv[i], usage);
      return false;
    }
  }
  return true;
}

}  // namespace tellonce::bench

#endif  // TELLONCE_TESTS_BENCH_FLAGS_H_
