// Issue 16: tellonce as an operator and an agency get it. `cmake --install` into a
// temporary prefix, then an agency's connector built outside the tree against the
// installed SDK (find_package(tellonce), tellonce::connector_sdk) serves a fetch through
// the installed broker over mutual TLS; and the Debian packages `cpack -G DEB` makes
// list the expected files and dependencies (`dpkg-deb --info`, `--contents`).

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::testing {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs `argv`, expecting exit 0; the output.
std::string MustRun(const std::vector<std::string>& argv) {
  std::string output;
  const int code = RunCommand(argv, &output);
  EXPECT_EQ(code, 0) << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << ":\n" << output;
  return output;
}

TEST(InstallTest, ConnectorBuiltAgainstTheInstalledSdkServesAFetchThroughTheInstalledBroker) {
  TempDir tmp;
  const std::string prefix = tmp.path() + "/prefix";
  MustRun({TELLONCE_CMAKE_COMMAND, "--install", Env("TELLONCE_BINARY_DIR"), "--prefix", prefix});
  for (const char* file :
       {"bin/tellonce-broker", "bin/tellonce", "bin/tellonce-registry",
        "share/tellonce/make-dev-pki",
        "include/tellonce/connectors/sdk.h", "include/tellonce/tellonce/v1/connector.pb.h",
        "lib/systemd/system/tellonce-broker.service"}) {
    EXPECT_TRUE(std::filesystem::exists(prefix + "/" + file)) << file;
  }

  // The agency's project, built outside the tree with only the installed prefix.
  const std::string consumer = tmp.path() + "/consumer";
  std::vector<std::string> configure = {TELLONCE_CMAKE_COMMAND,
                                        "-S",
                                        Env("TELLONCE_SOURCE_DIR") +
                                            "/tests/integration/sdk_consumer",
                                        "-B",
                                        consumer,
                                        "-DCMAKE_PREFIX_PATH=" + prefix};
  if (std::filesystem::exists("/usr/bin/ccache")) {
    configure.push_back("-DCMAKE_CXX_COMPILER_LAUNCHER=/usr/bin/ccache");
  }
  MustRun(configure);
  MustRun({TELLONCE_CMAKE_COMMAND, "--build", consumer, "-j2"});
  // It compiled against the installed headers, not this tree's.
  const std::string flags = ReadText(consumer + "/CMakeFiles/hello_connector.dir/flags.make");
  EXPECT_TRUE(absl::StrContains(flags, prefix + "/include/tellonce")) << flags;
  EXPECT_FALSE(absl::StrContains(flags, Env("TELLONCE_SOURCE_DIR") + "/")) << flags;
  EXPECT_FALSE(absl::StrContains(flags, Env("TELLONCE_BINARY_DIR") + "/")) << flags;

  // A PKI from the installed make-dev-pki; the out-of-tree connector in the civil
  // registry's place; the installed broker.
  std::string output;
  ASSERT_EQ(RunCommand({prefix + "/share/tellonce/make-dev-pki", "--out", tmp.path() + "/pki",
                        "--directory", SampleDirectoryFile()},
                       &output),
            0)
      << output;
  Pki pki{tmp.path() + "/pki"};
  ConnectorProcess connector(consumer + "/hello_connector", tmp.path() + "/hello", pki, "registry",
                             "");
  ASSERT_TRUE(connector.Start().ok()) << connector.log();
  const std::string directory = tmp.path() + "/directory.textproto";
  ASSERT_TRUE(WriteDirectoryWithPorts(directory, {{"registry", connector.port()}}).ok());
  BrokerProcess broker(tmp.path() + "/broker", pki, directory, "", prefix + "/bin/tellonce-broker");
  ASSERT_TRUE(broker.Start().ok()) << broker.log();

  // The tax office's mandate covers person.name for TAX_ASSESSMENT.
  tellonce::v1::GetAttributesResponse response;
  grpc::Status status = GetAttributes(pki, broker.address(), "tax", CitizenId(7), {"person.name"},
                                      "TAX_ASSESSMENT", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK) << broker.log();
  EXPECT_EQ(response.results(0).value().string_value(), "Served by the installed SDK");

  // The installed CLI runs.
  EXPECT_TRUE(absl::StrContains(MustRun({prefix + "/bin/tellonce", "--version"}), "tellonce"));
  EXPECT_EQ(broker.Terminate(), 0);
  EXPECT_EQ(connector.Terminate(), 0);
}

// dpkg-deb's output for `what` (--info or --contents) of the package named `name` in
// `dir`.
std::string DebQuery(const std::string& dir, const std::string& name, const std::string& what) {
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (absl::StartsWith(file, name + "_") && absl::EndsWith(file, ".deb")) {
      return MustRun({"/usr/bin/dpkg-deb", what, entry.path().string()});
    }
  }
  ADD_FAILURE() << "no package " << name << " in " << dir;
  return "";
}

TEST(InstallTest, DebianPackagesHoldTheirFilesAndDependOnDebianLibraries) {
  TempDir tmp;
  MustRun({TELLONCE_CPACK_COMMAND, "-G", "DEB", "--config",
           Env("TELLONCE_BINARY_DIR") + "/CPackConfig.cmake", "-B", tmp.path()});

  const std::string broker_info = DebQuery(tmp.path(), "tellonce-broker", "--info");
  EXPECT_TRUE(absl::StrContains(broker_info, "Package: tellonce-broker")) << broker_info;
  // From dpkg-shlibdeps: the Debian runtime libraries the binary links (RocksDB is
  // linked statically from librocksdb-dev; its compression libraries are not).
  for (const char* library : {"libsnappy1v5", "libzstd1", "libgrpc++1.51", "libssl3", "libprotobuf",
                              "libjemalloc2", "libre2", "adduser"}) {
    EXPECT_TRUE(absl::StrContains(broker_info, library)) << library << "\n" << broker_info;
  }
  EXPECT_TRUE(absl::StrContains(broker_info, "postinst")) << broker_info;
  const std::string broker_files = DebQuery(tmp.path(), "tellonce-broker", "--contents");
  for (const char* file : {"./usr/bin/tellonce-broker",
                           "./usr/lib/systemd/system/tellonce-broker.service",
                           "./usr/share/tellonce/make-dev-pki",
                           "./usr/share/tellonce/examples/broker.textproto"}) {
    EXPECT_TRUE(absl::StrContains(broker_files, file)) << file << "\n" << broker_files;
  }
  EXPECT_FALSE(absl::StrContains(broker_files, "./usr/include")) << broker_files;
  EXPECT_FALSE(absl::StrContains(broker_files, "./usr/bin/tellonce\n")) << broker_files;

  const std::string cli_info = DebQuery(tmp.path(), "tellonce-cli", "--info");
  for (const char* library : {"libgrpc++1.51", "libssl3", "libprotobuf"}) {
    EXPECT_TRUE(absl::StrContains(cli_info, library)) << library << "\n" << cli_info;
  }
  EXPECT_TRUE(absl::StrContains(DebQuery(tmp.path(), "tellonce-cli", "--contents"),
                                "./usr/bin/tellonce\n"));

  const std::string sdk_info = DebQuery(tmp.path(), "libtellonce-connector-dev", "--info");
  for (const char* package :
       {"libgrpc++-dev", "libprotobuf-dev", "libabsl-dev", "libssl-dev", "libcpp-httplib-dev"}) {
    EXPECT_TRUE(absl::StrContains(sdk_info, package)) << package << "\n" << sdk_info;
  }
  const std::string sdk_files = DebQuery(tmp.path(), "libtellonce-connector-dev", "--contents");
  for (const char* file :
       {"./usr/include/tellonce/connectors/sdk.h", "./usr/include/tellonce/certs/tls.h",
        "./usr/include/tellonce/tellonce/v1/connector.pb.h", "/libtellonce_connectors.a",
        "/libtellonce_certs.a", "/libtellonce_proto.a", "/cmake/tellonce/tellonceConfig.cmake",
        "/cmake/tellonce/tellonceTargets.cmake"}) {
    EXPECT_TRUE(absl::StrContains(sdk_files, file)) << file << "\n" << sdk_files;
  }
  EXPECT_FALSE(absl::StrContains(sdk_files, "./usr/bin/")) << sdk_files;

  const std::string examples_files = DebQuery(tmp.path(), "tellonce-examples", "--contents");
  for (const char* file : {"./usr/bin/tellonce-registry", "./usr/bin/tellonce-bank",
                           "./usr/lib/systemd/system/tellonce-connector@.service"}) {
    EXPECT_TRUE(absl::StrContains(examples_files, file)) << file << "\n" << examples_files;
  }
}

}  // namespace
}  // namespace tellonce::testing
