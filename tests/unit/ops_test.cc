// The operating surface's pure parts: the Prometheus exposition, the log line formats,
// the throttle, and the admin listener's routes on a real loopback socket.

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "grpc/support/log.h"
#include "gtest/gtest.h"
#include "ops/admin_server.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "tests/integration/harness.h"

namespace tellonce::ops {
namespace {

TEST(MetricsTest, CountersAndGaugesRenderWithEscapedLabelsAndOneHeaderPerFamily) {
  MetricsRegistry registry;
  Family<Counter>& calls = registry.AddCounter("x_calls_total", "Calls.\nSecond line \\.", {"who"});
  calls.With({"a\"b\\c\nd"}).Add(3);
  calls.With({"plain"}).Add();
  calls.With({"plain"}).Add(2);
  registry.AddGauge("x_depth", "Depth.").Get().Set(2.5);
  const std::string text = registry.Render();
  EXPECT_TRUE(absl::StrContains(text, "# HELP x_calls_total Calls.\\nSecond line \\\\.\n"));
  EXPECT_TRUE(absl::StrContains(text, "# TYPE x_calls_total counter\n"));
  EXPECT_TRUE(absl::StrContains(text, "x_calls_total{who=\"a\\\"b\\\\c\\nd\"} 3\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "x_calls_total{who=\"plain\"} 3\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "# TYPE x_depth gauge\nx_depth 2.5\n")) << text;
  // With() returns the same child for the same labels.
  EXPECT_EQ(&calls.With({"plain"}), &calls.With({"plain"}));
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricsRegistry registry;
  Histogram& h = registry.AddHistogram("x_seconds", "Latency.", {}, {0.1, 1}).Get();
  h.Observe(0.05);
  h.Observe(0.1);  // upper bounds are inclusive
  h.Observe(0.5);
  h.Observe(7);
  const std::string text = registry.Render();
  EXPECT_TRUE(absl::StrContains(text, "x_seconds_bucket{le=\"0.1\"} 2\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "x_seconds_bucket{le=\"1\"} 3\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "x_seconds_bucket{le=\"+Inf\"} 4\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "x_seconds_sum 7.65\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "x_seconds_count 4\n")) << text;
}

TEST(MetricsTest, ConcurrentIncrementsAreAllCounted) {
  MetricsRegistry registry;
  Counter& c = registry.AddCounter("x_total", "X.").Get();
  Histogram& h = registry.AddHistogram("x_h", "H.", {}, {1}).Get();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
        c.Add();
        h.Observe(0.5);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(c.value(), 400000u);
  EXPECT_EQ(h.BucketCounts()[0], 400000u);
  EXPECT_DOUBLE_EQ(h.sum(), 200000);
}

TEST(MetricsTest, ProcessCollectorReportsThisProcess) {
  MetricsRegistry registry;
  registry.AddProcessCollector();
  const std::string text = registry.Render();
  for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ",
                           "process_virtual_memory_bytes ", "process_start_time_seconds ",
                           "process_open_fds ", "process_max_fds "}) {
    EXPECT_TRUE(absl::StrContains(text, std::string("\n") + name)) << name << "\n" << text;
  }
}

// Captures what Log writes to stderr (fd 2) while `body` runs.
std::string CaptureStderr(const std::function<void()>& body) {
  std::fflush(stderr);
  char path[] = "/tmp/ops_test_XXXXXX";
  const int fd = mkstemp(path);
  const int saved = dup(STDERR_FILENO);
  dup2(fd, STDERR_FILENO);
  body();
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::string out;
  lseek(fd, 0, SEEK_SET);
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fd);
  unlink(path);
  return out;
}

TEST(LogTest, JsonLinesEscapeControlCharactersAndCarryFields) {
  ConfigureLogging({.program = "ops-test",
                    .format = LogFormat::kJson,
                    .level = LogLevel::kInfo,
                    .capture_grpc = false});
  const std::string out = CaptureStderr([] {
    LogWarning("quote \" backslash \\ newline \n tab \t bell \a", {{"agency", "tax"}});
    LogDebug("below the level");
  });
  ConfigureLogging({.program = "ops-test", .capture_grpc = false});
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_TRUE(absl::StartsWith(lines[0], "{\"time\":\"")) << lines[0];
  EXPECT_TRUE(absl::StrContains(
      lines[0],
      "\"level\":\"WARN\",\"program\":\"ops-test\",\"message\":\"quote \\\" backslash \\\\ "
      "newline \\n tab \\t bell \\u0007\",\"agency\":\"tax\"}"))
      << lines[0];
}

TEST(LogTest, TextLinesStayOneLineWithLevelAndProgram) {
  ConfigureLogging({.program = "ops-test", .capture_grpc = false});
  const std::string out = CaptureStderr([] { LogError("two\nlines", {{"request_id", "r\n1"}}); });
  EXPECT_TRUE(absl::EndsWith(out, " ERROR ops-test: two\\nlines request_id=r\\n1\n")) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
}

TEST(LogTest, ThrottleLetsOneLineThroughPerIntervalAndCountsTheRest) {
  ConfigureLogging({.program = "ops-test", .capture_grpc = false});
  LogThrottle throttle(absl::Milliseconds(300));
  const std::string out = CaptureStderr([&] {
    for (int i = 0; i < 50; ++i) throttle.Log(LogLevel::kWarning, "refused");
    absl::SleepFor(absl::Milliseconds(350));
    throttle.Log(LogLevel::kWarning, "refused");
  });
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << out;
  EXPECT_FALSE(absl::StrContains(lines[0], "suppressed"));
  EXPECT_TRUE(absl::EndsWith(lines[1], "refused suppressed=49")) << lines[1];
}

TEST(LogTest, GrpcLinesTakeOurFormatAndAreThrottledPerCallSite) {
  ConfigureLogging({.program = "ops-test", .format = LogFormat::kJson});
  const std::string out = CaptureStderr([] {
    for (int i = 0; i < 20; ++i) gpr_log(GPR_ERROR, "handshake failed %d", i);
    gpr_log(GPR_INFO, "chatty info, below gRPC's verbosity at INFO");
  });
  ConfigureLogging({.program = "ops-test", .capture_grpc = false});
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_TRUE(absl::StrContains(lines[0],
                                "\"level\":\"ERROR\",\"program\":\"ops-test\","
                                "\"message\":\"handshake failed 0\",\"source\":\"grpc\""))
      << lines[0];
}

TEST(AdminServerTest, ServesMetricsProbesAndNothingElse) {
  MetricsRegistry registry;
  registry.AddCounter("x_total", "X.").Get().Add(7);
  std::atomic<bool> ready{true};
  absl::StatusOr<std::unique_ptr<AdminServer>> admin =
      AdminServer::Start({.address = "127.0.0.1:0",
                          .metrics = &registry,
                          .not_ready = [&]() -> std::vector<std::string> {
                            if (ready) return {};
                            return {"database: closed", "crl: expired"};
                          }});
  ASSERT_TRUE(admin.ok()) << admin.status();
  const int port = (*admin)->port();
  ASSERT_GT(port, 0);
  std::string body;
  EXPECT_EQ(testing::HttpGet(port, "/metrics", &body), 200);
  EXPECT_TRUE(absl::StrContains(body, "x_total 7\n")) << body;
  EXPECT_EQ(testing::HttpGet(port, "/healthz", &body), 200);
  EXPECT_EQ(testing::HttpGet(port, "/readyz", &body), 200);
  ready = false;
  EXPECT_EQ(testing::HttpGet(port, "/readyz", &body), 503);
  EXPECT_EQ(body, "not ready\ndatabase: closed\ncrl: expired\n");
  EXPECT_EQ(testing::HttpGet(port, "/", &body), 404);
  EXPECT_EQ(testing::HttpGet(port, "/metrics/../etc/passwd", &body), 404);
}

TEST(AdminServerTest, RefusesABadAddressAndAPortInUse) {
  EXPECT_EQ(AdminServer::Start({.address = "no-port"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::unique_ptr<AdminServer>> first =
      AdminServer::Start({.address = "127.0.0.1:0"});
  ASSERT_TRUE(first.ok());
  absl::StatusOr<std::unique_ptr<AdminServer>> second =
      AdminServer::Start({.address = absl::StrCat("127.0.0.1:", (*first)->port())});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(second.status().message(), "admin.listen_address"));
}

}  // namespace
}  // namespace tellonce::ops
