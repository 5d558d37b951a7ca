#include "ops/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace tellonce::ops {
namespace {

void AppendDouble(std::string* out, double v) {
  if (std::isnan(v)) {
    out->append("NaN");
  } else if (std::isinf(v)) {
    out->append(v > 0 ? "+Inf" : "-Inf");
  } else {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    out->append(buf, ec == std::errc() ? static_cast<size_t>(end - buf) : 0);
  }
}

// Label values escape backslash, double quote and newline; HELP escapes backslash
// and newline (text format 0.0.4).
void AppendEscaped(std::string* out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (quote && c == '"') {
      out->append("\\\"");
    } else {
      out->push_back(c);
    }
  }
}

Labels Zip(const std::vector<std::string>& names, const std::vector<std::string>& values) {
  Labels labels;
  labels.reserve(names.size());
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    labels.emplace_back(names[i], values[i]);
  }
  return labels;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::Observe(double v) {
  const size_t i =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> counts(bounds_.size() + 1);
  for (size_t i = 0; i < counts.size(); ++i) {
    counts[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  return counts;
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double>* buckets =
      new std::vector<double>{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                              0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return *buckets;
}

void MetricsWriter::Family(std::string_view name, std::string_view help, std::string_view type) {
  out_.append("# HELP ").append(name).push_back(' ');
  AppendEscaped(&out_, help, /*quote=*/false);
  out_.append("\n# TYPE ").append(name).push_back(' ');
  out_.append(type).push_back('\n');
}

void MetricsWriter::Name(std::string_view name, const Labels& labels) {
  out_.append(name);
  if (labels.empty()) return;
  out_.push_back('{');
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) out_.push_back(',');
    first = false;
    out_.append(key).append("=\"");
    AppendEscaped(&out_, value, /*quote=*/true);
    out_.push_back('"');
  }
  out_.push_back('}');
}

void MetricsWriter::Sample(std::string_view name, const Labels& labels, double value) {
  Name(name, labels);
  out_.push_back(' ');
  AppendDouble(&out_, value);
  out_.push_back('\n');
}

void MetricsWriter::Sample(std::string_view name, const Labels& labels, uint64_t value) {
  Name(name, labels);
  out_.push_back(' ');
  out_.append(std::to_string(value));
  out_.push_back('\n');
}

void MetricsWriter::Gauge(std::string_view name, std::string_view help, double value) {
  Family(name, help, "gauge");
  Sample(name, {}, value);
}

void MetricsWriter::Counter(std::string_view name, std::string_view help, uint64_t value) {
  Family(name, help, "counter");
  Sample(name, {}, value);
}

template <typename M>
M& Family<M>::With(std::initializer_list<std::string_view> values) {
  std::vector<std::string> key(values.begin(), values.end());
  key.resize(label_names_.size());
  absl::MutexLock lock(&mu_);
  std::unique_ptr<M>& child = children_[key];
  if (child == nullptr) child = make_();
  return *child;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

struct MetricsRegistry::FamilyBase {
  std::string name;
  std::string help;
  std::string type;
  std::unique_ptr<Family<Counter>> counters;
  std::unique_ptr<Family<Gauge>> gauges;
  std::unique_ptr<Family<Histogram>> histograms;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

Family<Counter>& MetricsRegistry::AddCounter(std::string name, std::string help,
                                             std::vector<std::string> label_names) {
  auto f = std::make_unique<FamilyBase>();
  f->name = std::move(name);
  f->help = std::move(help);
  f->type = "counter";
  f->counters.reset(
      new Family<Counter>(std::move(label_names), [] { return std::make_unique<Counter>(); }));
  Family<Counter>& family = *f->counters;
  absl::MutexLock lock(&mu_);
  families_.push_back(std::move(f));
  return family;
}

Family<Gauge>& MetricsRegistry::AddGauge(std::string name, std::string help,
                                         std::vector<std::string> label_names) {
  auto f = std::make_unique<FamilyBase>();
  f->name = std::move(name);
  f->help = std::move(help);
  f->type = "gauge";
  f->gauges.reset(
      new Family<Gauge>(std::move(label_names), [] { return std::make_unique<Gauge>(); }));
  Family<Gauge>& family = *f->gauges;
  absl::MutexLock lock(&mu_);
  families_.push_back(std::move(f));
  return family;
}

Family<Histogram>& MetricsRegistry::AddHistogram(std::string name, std::string help,
                                                 std::vector<std::string> label_names,
                                                 std::vector<double> bounds) {
  auto f = std::make_unique<FamilyBase>();
  f->name = std::move(name);
  f->help = std::move(help);
  f->type = "histogram";
  f->histograms.reset(new Family<Histogram>(
      std::move(label_names), [bounds] { return std::make_unique<Histogram>(bounds); }));
  Family<Histogram>& family = *f->histograms;
  absl::MutexLock lock(&mu_);
  families_.push_back(std::move(f));
  return family;
}

void MetricsRegistry::AddCollector(std::function<void(MetricsWriter&)> collect) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collect));
}

std::string MetricsRegistry::Render() const {
  MetricsWriter w;
  absl::MutexLock lock(&mu_);
  for (const auto& f : families_) {
    w.Family(f->name, f->help, f->type);
    if (f->counters != nullptr) {
      absl::MutexLock family_lock(&f->counters->mu_);
      for (const auto& [values, c] : f->counters->children_) {
        w.Sample(f->name, Zip(f->counters->label_names_, values), c->value());
      }
    } else if (f->gauges != nullptr) {
      absl::MutexLock family_lock(&f->gauges->mu_);
      for (const auto& [values, g] : f->gauges->children_) {
        w.Sample(f->name, Zip(f->gauges->label_names_, values), g->value());
      }
    } else if (f->histograms != nullptr) {
      absl::MutexLock family_lock(&f->histograms->mu_);
      for (const auto& [values, h] : f->histograms->children_) {
        const Labels labels = Zip(f->histograms->label_names_, values);
        const std::vector<uint64_t> counts = h->BucketCounts();
        uint64_t cumulative = 0;
        for (size_t i = 0; i < counts.size(); ++i) {
          cumulative += counts[i];
          Labels with_le = labels;
          std::string le;
          AppendDouble(&le, i < h->bounds().size() ? h->bounds()[i] : INFINITY);
          with_le.emplace_back("le", le);
          w.Sample(f->name + "_bucket", with_le, cumulative);
        }
        w.Sample(f->name + "_sum", labels, h->sum());
        w.Sample(f->name + "_count", labels, cumulative);
      }
    }
  }
  for (const auto& collect : collectors_) collect(w);
  return w.Take();
}

void MetricsRegistry::AddProcessCollector() {
  AddCollector([](MetricsWriter& w) {
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    std::ifstream stat_file("/proc/self/stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    // Fields after the command name, which is in parentheses and may hold spaces.
    const size_t close = stat.rfind(')');
    if (close != std::string::npos && ticks > 0) {
      std::istringstream fields(stat.substr(close + 2));
      std::vector<std::string> f;
      for (std::string field; fields >> field;) f.push_back(field);
      // f[0] is field 3 (state): field n is f[n - 3].
      if (f.size() > 21) {
        const double utime = std::stod(f[11]), stime = std::stod(f[12]);
        const double start_ticks = std::stod(f[19]);
        const double vsize = std::stod(f[20]), rss_pages = std::stod(f[21]);
        w.Family("process_cpu_seconds_total", "User and system CPU time spent in seconds.",
                 "counter");
        w.Sample("process_cpu_seconds_total", {}, (utime + stime) / ticks);
        w.Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", vsize);
        w.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                rss_pages * page);
        double btime = 0;
        std::ifstream proc_stat("/proc/stat");
        for (std::string line; std::getline(proc_stat, line);) {
          if (line.rfind("btime ", 0) == 0) btime = std::stod(line.substr(6));
        }
        w.Gauge("process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                btime + start_ticks / ticks);
      }
    }
    int fds = 0;
    if (DIR* dir = opendir("/proc/self/fd")) {
      while (dirent* e = readdir(dir)) {
        if (e->d_name[0] != '.') ++fds;
      }
      closedir(dir);
      --fds;  // the directory stream's own descriptor
    }
    w.Gauge("process_open_fds", "Number of open file descriptors.", fds);
    rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      w.Gauge("process_max_fds", "Maximum number of open file descriptors.",
              static_cast<double>(limit.rlim_cur));
    }
  });
}

}  // namespace tellonce::ops
