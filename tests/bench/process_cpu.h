#ifndef TELLONCE_TESTS_BENCH_PROCESS_CPU_H_
#define TELLONCE_TESTS_BENCH_PROCESS_CPU_H_

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/bench/flags.h"

namespace tellonce::bench {

// CPU time (user + system, all threads) process `pid` has used, in seconds, from
// /proc/<pid>/stat; -1 when it cannot be read (e.g. the process is gone).
inline double ProcessCpuSeconds(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return -1;
  // The command name (field 2) is in parentheses and may hold spaces.
  const size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) return -1;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  long long utime = -1, stime = -1;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 && !absl::SimpleAtoi(field, &utime)) return -1;
    if (i == 15 && !absl::SimpleAtoi(field, &stime)) return -1;
  }
  if (utime < 0 || stime < 0) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The sum over `pids`; -1 when any cannot be read.
inline double ProcessCpuSeconds(const std::vector<int>& pids) {
  double total = 0;
  for (int pid : pids) {
    const double s = ProcessCpuSeconds(pid);
    if (s < 0) return -1;
    total += s;
  }
  return total;
}

// Processes under test reported under one name (e.g. nginx's master and workers), with
// the CPU they had used when the measured window opened.
struct ProcessGroup {
  std::string name;
  std::vector<int> pids;
  double start_seconds = -1;
};

// The handler of a repeated flag "--pid NAME=PID[,PID...]".
inline FlagHandler ProcessGroups(std::vector<ProcessGroup>* out) {
  return [out](const std::string& v) {
    std::pair<std::string, std::string> parts = absl::StrSplit(v, absl::MaxSplits('=', 1));
    ProcessGroup group;
    group.name = parts.first;
    for (absl::string_view p : absl::StrSplit(parts.second, ',', absl::SkipEmpty())) {
      int pid = 0;
      if (!absl::SimpleAtoi(p, &pid)) return false;
      group.pids.push_back(pid);
    }
    if (group.name.empty() || group.pids.empty()) return false;
    out->push_back(std::move(group));
    return true;
  };
}

}  // namespace tellonce::bench

#endif  // TELLONCE_TESTS_BENCH_PROCESS_CPU_H_
