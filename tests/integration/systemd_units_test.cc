// Issue 16: the systemd units of deploy/systemd pass `systemd-analyze verify`, and their
// hardening keeps `systemd-analyze security --offline=true` at 2.0 or lower. The units
// name /usr/bin/... as the packages install them; the test points them at the binaries
// built in this tree (verify checks that ExecStart= is executable).

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::testing {
namespace {

std::string SourceDir() {
  const char* dir = std::getenv("TELLONCE_SOURCE_DIR");
  return dir != nullptr ? dir : "";
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

constexpr char kSystemdAnalyze[] = "/usr/bin/systemd-analyze";

class SystemdUnitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kSystemdAnalyze))
        << "systemd-analyze is missing: scripts/setup installs Debian's systemd package";
  }

  // deploy/systemd/<unit> written into the temp dir as `as`, with the packaged binary
  // paths replaced by the built ones and `append` added at the end of [Service].
  std::string Prepare(const std::string& unit, const std::string& as,
                      const std::string& append = "") {
    std::string text = ReadText(SourceDir() + "/deploy/systemd/" + unit);
    EXPECT_FALSE(text.empty()) << unit;
    absl::StrReplaceAll({{"/usr/bin/tellonce-broker", BrokerBinary()},
                         {"/usr/bin/tellonce-%i", AgencyBinary("%i")}},
                        &text);
    if (!append.empty()) {
      const size_t install = text.find("[Install]");
      text.insert(install == std::string::npos ? text.size() : install, append + "\n");
    }
    const std::string path = dir_.path() + "/" + as;
    std::ofstream(path) << text;
    return path;
  }

  // What `systemd-analyze verify` says about the unit: empty when it exits 0 without a
  // word (a warning such as an unknown key or a bad value counts as a problem).
  std::string VerifyProblems(const std::string& path) {
    std::string output;
    const int code = RunCommand({kSystemdAnalyze, "verify", path}, &output);
    if (code == 0 && output.empty()) return "";
    return absl::StrCat("exit ", code, ": ", output);
  }

  // The overall exposure `systemd-analyze security --offline=true` computes; -1 when
  // it cannot be read.
  double Exposure(const std::string& path, std::string* output) {
    RunCommand({kSystemdAnalyze, "security", "--offline=true", "--no-pager", path}, output);
    std::smatch match;
    static const std::regex kOverall("Overall exposure level for [^:]+: ([0-9.]+)");
    double exposure = -1;
    if (std::regex_search(*output, match, kOverall)) {
      if (!absl::SimpleAtod(match[1].str(), &exposure)) exposure = -1;
    }
    return exposure;
  }

  TempDir dir_;
};

TEST_F(SystemdUnitsTest, BrokerUnitVerifiesAndIsHardened) {
  const std::string unit = Prepare("tellonce-broker.service", "tellonce-broker.service");
  EXPECT_EQ(VerifyProblems(unit), "");
  std::string output;
  const double exposure = Exposure(unit, &output);
  RecordProperty("exposure", absl::StrCat(exposure));
  std::printf("tellonce-broker.service exposure %.1f\n", exposure);
  EXPECT_GE(exposure, 0) << output;
  EXPECT_LE(exposure, 2.0) << output;
}

TEST_F(SystemdUnitsTest, ConnectorUnitVerifiesAndIsHardened) {
  const std::string unit =
      Prepare("tellonce-connector@.service", "tellonce-connector@registry.service");
  EXPECT_EQ(VerifyProblems(unit), "");
  std::string output;
  const double exposure = Exposure(unit, &output);
  RecordProperty("exposure", absl::StrCat(exposure));
  std::printf("tellonce-connector@registry.service exposure %.1f\n", exposure);
  EXPECT_GE(exposure, 0) << output;
  EXPECT_LE(exposure, 2.0) << output;
}

TEST_F(SystemdUnitsTest, BrokenUnitsAreReported) {
  // A fatal error, a value systemd ignores with a warning, an unknown key.
  EXPECT_NE(VerifyProblems(Prepare("tellonce-broker.service", "fatal.service",
                                   "ExecStartPost=relative/path")),
            "");
  EXPECT_NE(VerifyProblems(Prepare("tellonce-broker.service", "bad-value.service",
                                   "ProtectSystem=sometimes")),
            "");
  EXPECT_NE(VerifyProblems(Prepare("tellonce-connector@.service",
                                   "tellonce-connector@typo.service", "NoNewPrivilege=yes")),
            "");
}

TEST_F(SystemdUnitsTest, WeakenedUnitScoresWorse) {
  const std::string strong = Prepare("tellonce-broker.service", "strong.service");
  // Later assignments win: undo the hardening.
  const std::string weak = Prepare(
      "tellonce-broker.service", "weak.service",
      "ProtectSystem=no\nProtectHome=no\nPrivateDevices=no\nSystemCallFilter=\n"
      "CapabilityBoundingSet=~\nRestrictAddressFamilies=\nPrivateUsers=no\n"
      "NoNewPrivileges=no\nMemoryDenyWriteExecute=no");
  std::string output;
  const double strong_exposure = Exposure(strong, &output);
  const double weak_exposure = Exposure(weak, &output);
  EXPECT_GT(weak_exposure, 2.0) << output;
  EXPECT_LT(strong_exposure, weak_exposure);
}

}  // namespace
}  // namespace tellonce::testing
