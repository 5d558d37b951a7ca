// Issue 16, files and keys: the data directory and its files are private to the
// broker's user, private keys that group or others may read are refused (by the broker
// and by connectors) with the file and the fix named, `tellonce-broker --check` is safe
// beside a running broker (nothing in its data directory changes) and reports what is
// wrong (a certificate with another SAN, from another CA, a readable key), and
// make-dev-pki adds one agency to an existing PKI without replacing its CA.

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::testing {
namespace {

namespace fs = std::filesystem;

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 07777;
  return st.st_mode & 07777;
}

// Every entry under `dir` (and `dir` itself) that group or others may use, with its mode.
std::vector<std::string> OpenEntries(const std::string& dir) {
  std::vector<std::string> open;
  if ((ModeOf(dir) & 077) != 0) open.push_back(absl::StrCat(dir, " ", ModeOf(dir)));
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_symlink()) continue;
    const mode_t mode = ModeOf(entry.path().string());
    if ((mode & 077) != 0) open.push_back(absl::StrCat(entry.path().string(), " 0", mode));
  }
  return open;
}

// name -> (size, mtime in ns) of every file under `dir`.
std::map<std::string, std::tuple<uintmax_t, int64_t>> Listing(const std::string& dir) {
  std::map<std::string, std::tuple<uintmax_t, int64_t>> listing;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    struct stat st;
    if (lstat(entry.path().c_str(), &st) != 0) continue;
    listing[entry.path().string()] = {
        static_cast<uintmax_t>(st.st_size),
        static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  }
  return listing;
}

class FilesAndKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Pki> pki = MakePki(dir_.path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    directory_ = SampleDirectoryFor(pki_);
  }

  // Points the broker's config at another TLS certificate and key.
  static void UseCertificate(const BrokerProcess& broker, const std::string& from_cert,
                             const std::string& from_key, const std::string& cert,
                             const std::string& key) {
    std::string config = ReadText(broker.config_path());
    absl::StrReplaceAll({{"\"" + from_cert + "\"", "\"" + cert + "\""},
                         {"\"" + from_key + "\"", "\"" + key + "\""}},
                        &config);
    std::ofstream(broker.config_path()) << config;
  }

  // `tellonce-broker --config <broker's config> --check`; its exit code.
  int Check(const BrokerProcess& broker, std::string* output,
            std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {BrokerBinary(), "--config", broker.config_path(), "--check"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunCommand(argv, output);
  }

  void Grant(const BrokerProcess& broker, int n) {
    for (int i = 0; i < n; ++i) {
      ConsentTerms terms;
      terms.citizen = CitizenId(i);
      terms.consumer = "tax";
      terms.attributes = {"person.address"};
      terms.purpose = "TAX_ASSESSMENT";
      absl::StatusOr<std::string> id = GrantConsent(pki_, broker.address(), terms);
      ASSERT_TRUE(id.ok()) << id.status();
    }
  }

  TempDir dir_;
  Pki pki_;
  std::string directory_;
};

TEST_F(FilesAndKeysTest, DataDirectoryAndItsFilesArePrivate) {
  BrokerProcess broker(dir_.path() + "/broker", pki_, directory_);
  ASSERT_TRUE(broker.Start().ok()) << broker.log();
  Grant(broker, 5);
  // The first checkpoint is signed within a second of the start.
  for (int i = 0; i < 100 && !fs::exists(broker.data_dir() + ".checkpoint"); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(broker.Terminate(), 0);
  EXPECT_EQ(ModeOf(broker.data_dir()), 0700u);
  EXPECT_EQ(OpenEntries(broker.data_dir()), std::vector<std::string>());
  // The signed checkpoint file beside it too.
  EXPECT_EQ(ModeOf(broker.data_dir() + ".checkpoint"), 0600u);
}

TEST_F(FilesAndKeysTest, AnOpenDataDirectoryIsMadePrivateAtStart) {
  BrokerProcess broker(dir_.path() + "/broker", pki_, directory_);
  ASSERT_TRUE(broker.Start().ok()) << broker.log();
  Grant(broker, 2);
  EXPECT_EQ(broker.Terminate(), 0);
  // As an older build (or a copy made under umask 022) left it.
  chmod(broker.data_dir().c_str(), 0755);
  for (const auto& entry : fs::directory_iterator(broker.data_dir())) {
    chmod(entry.path().c_str(), 0644);
  }
  ASSERT_FALSE(OpenEntries(broker.data_dir()).empty());
  ASSERT_TRUE(broker.Start().ok()) << broker.log();
  EXPECT_EQ(OpenEntries(broker.data_dir()), std::vector<std::string>());
  EXPECT_EQ(broker.Terminate(), 0);
}

TEST_F(FilesAndKeysTest, BrokerRefusesATlsKeyOthersCanRead) {
  chmod(pki_.broker_key().c_str(), 0644);
  BrokerProcess broker(dir_.path() + "/broker", pki_, directory_);
  ASSERT_FALSE(broker.Start().ok());
  EXPECT_TRUE(absl::StrContains(broker.log(), "tls.key_file " + pki_.broker_key()))
      << broker.log();
  EXPECT_TRUE(absl::StrContains(broker.log(), "mode 0644")) << broker.log();
  EXPECT_TRUE(absl::StrContains(broker.log(), "chmod 600 " + pki_.broker_key())) << broker.log();
  EXPECT_FALSE(fs::exists(broker.data_dir())) << "refused before touching the data";

  // The explicit override, for setups that protect keys otherwise.
  BrokerProcess relaxed(dir_.path() + "/relaxed", pki_, directory_,
                        "allow_readable_private_keys: true\n");
  EXPECT_TRUE(relaxed.Start().ok()) << relaxed.log();
}

TEST_F(FilesAndKeysTest, ReloadRefusesARotatedKeyOthersCanReadAndKeepsServing) {
  BrokerProcess broker(dir_.path() + "/broker", pki_, directory_);
  ASSERT_TRUE(broker.Start().ok()) << broker.log();
  // A rotated key written as 0644 while the broker runs (the files are re-read when
  // their contents change).
  const std::string rotated = ReadText(pki_.key("registry"));
  std::ofstream(pki_.broker_key(), std::ios::trunc) << rotated;
  chmod(pki_.broker_key().c_str(), 0644);
  broker.Hangup();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!absl::StrContains(broker.log(), "chmod 600") && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(absl::StrContains(broker.log(), "chmod 600 " + pki_.broker_key())) << broker.log();
  Grant(broker, 1);
  EXPECT_EQ(broker.Terminate(), 0);
}

TEST_F(FilesAndKeysTest, BrokerRefusesASigningKeyTheGroupCanRead) {
  chmod(pki_.signing_key().c_str(), 0640);
  BrokerProcess broker(dir_.path() + "/broker", pki_, directory_);
  ASSERT_FALSE(broker.Start().ok());
  EXPECT_TRUE(absl::StrContains(broker.log(), "signing.key_file " + pki_.signing_key()))
      << broker.log();
  EXPECT_TRUE(absl::StrContains(broker.log(), "chmod 600")) << broker.log();
}

TEST_F(FilesAndKeysTest, ConnectorRefusesAKeyOthersCanRead) {
  chmod(pki_.key("registry").c_str(), 0604);
  ConnectorProcess registry(AgencyBinary("registry"), dir_.path() + "/registry", pki_, "registry",
                            SampleConnectorFile("registry-records.textproto"));
  ASSERT_FALSE(registry.Start().ok());
  EXPECT_TRUE(absl::StrContains(registry.log(), "chmod 600 " + pki_.key("registry")))
      << registry.log();
  ConnectorProcess relaxed(AgencyBinary("registry"), dir_.path() + "/relaxed", pki_, "registry",
                           SampleConnectorFile("registry-records.textproto"), 0,
                           "allow_readable_private_keys: true");
  EXPECT_TRUE(relaxed.Start().ok()) << relaxed.log();
}

TEST_F(FilesAndKeysTest, CheckBesideARunningBrokerChangesNothingInItsDataDirectory) {
  BrokerProcess broker(dir_.path() + "/broker", pki_, directory_);
  ASSERT_TRUE(broker.Start().ok()) << broker.log();
  Grant(broker, 3);
  // Let the first checkpoint be signed and the guard file written, then nothing moves.
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (!fs::exists(broker.data_dir() + ".checkpoint") && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(fs::exists(broker.data_dir() + ".checkpoint"));
  absl::SleepFor(absl::Milliseconds(500));
  const auto before = Listing(broker.data_dir());
  const std::string log_before = ReadText(broker.data_dir() + "/LOG");

  std::string output;
  EXPECT_EQ(Check(broker, &output), 0) << output;
  EXPECT_TRUE(absl::StrContains(output, "configuration OK")) << output;
  EXPECT_TRUE(absl::StrContains(output, "database opens (read-only)")) << output;
  EXPECT_TRUE(absl::StrContains(output, "the database holds its checkpoint")) << output;

  EXPECT_EQ(Listing(broker.data_dir()), before);
  EXPECT_EQ(ReadText(broker.data_dir() + "/LOG"), log_before);
  // The broker still serves and still holds its lock.
  Grant(broker, 1);
  EXPECT_EQ(broker.Terminate(), 0);
}

TEST_F(FilesAndKeysTest, CheckReportsACertificateWithAnotherSan) {
  BrokerProcess broker(dir_.path() + "/broker", pki_, directory_);
  // The registry's certificate and key in the broker's place: they match, the CA
  // issued them, but they are not the broker's identity.
  UseCertificate(broker, pki_.broker_cert(), pki_.broker_key(), pki_.cert("registry"),
                 pki_.key("registry"));
  std::string output;
  EXPECT_EQ(Check(broker, &output), 1) << output;
  EXPECT_TRUE(absl::StrContains(output, "URI SAN is spiffe://tellonce.local/agency/registry, "
                                        "expected spiffe://tellonce.local/broker"))
      << output;
}

TEST_F(FilesAndKeysTest, CheckReportsACertificateFromAnotherCaAndAReadableKey) {
  absl::StatusOr<Pki> other = MakePki(dir_.path() + "/other-pki", SampleDirectoryFile());
  ASSERT_TRUE(other.ok()) << other.status();
  chmod(pki_.signing_key().c_str(), 0644);
  BrokerProcess broker(dir_.path() + "/broker", pki_, directory_);
  UseCertificate(broker, pki_.broker_cert(), pki_.broker_key(), other->broker_cert(),
                 other->broker_key());
  std::string output;
  EXPECT_EQ(Check(broker, &output), 1) << output;
  EXPECT_TRUE(absl::StrContains(output, "not verified by tls.ca_file")) << output;
  EXPECT_TRUE(absl::StrContains(output, "signing.key_file " + pki_.signing_key())) << output;
  EXPECT_TRUE(absl::StrContains(output, "chmod 600")) << output;
}

TEST_F(FilesAndKeysTest, CheckDirectoryValidatesOnlyTheDirectoryFile) {
  std::string output;
  EXPECT_EQ(RunCommand({BrokerBinary(), "--check-directory", directory_}, &output), 0) << output;
  EXPECT_TRUE(absl::StrContains(output, "directory OK")) << output;
  const std::string broken = dir_.path() + "/broken.textproto";
  std::ofstream(broken) << ReadText(directory_)
                        << "\nmandates { id: \"m\" consumer: \"nobody\" }\n";
  EXPECT_EQ(RunCommand({BrokerBinary(), "--check-directory", broken}, &output), 1) << output;
  EXPECT_TRUE(absl::StrContains(output, broken)) << output;
}

TEST_F(FilesAndKeysTest, MakeDevPkiAddsOneAgencyKeepingTheCa) {
  const std::string make = std::string(std::getenv("TELLONCE_SOURCE_DIR")) + "/certs/make-dev-pki";
  const std::string ca = ReadText(pki_.ca());
  const std::string bank = ReadText(pki_.cert("bank"));
  std::string output;
  ASSERT_EQ(RunCommand({make, "--out", pki_.dir, "--add-agency", "newco"}, &output), 0) << output;
  EXPECT_EQ(ReadText(pki_.ca()), ca);
  EXPECT_EQ(ReadText(pki_.cert("bank")), bank);
  EXPECT_EQ(ModeOf(pki_.key("newco")), 0600u);
  ASSERT_EQ(RunCommand({"/usr/bin/openssl", "verify", "-CAfile", pki_.ca(), pki_.cert("newco")},
                       &output),
            0)
      << output;
  ASSERT_EQ(RunCommand({"/usr/bin/openssl", "x509", "-in", pki_.cert("newco"), "-noout", "-ext",
                        "subjectAltName"},
                       &output),
            0);
  EXPECT_TRUE(absl::StrContains(output, "URI:spiffe://tellonce.local/agency/newco")) << output;

  // Not twice, not into a folder without a PKI, not a malformed id.
  EXPECT_EQ(RunCommand({make, "--out", pki_.dir, "--add-agency", "newco"}, &output), 1);
  EXPECT_TRUE(absl::StrContains(output, "exists")) << output;
  EXPECT_EQ(RunCommand({make, "--out", dir_.path() + "/empty", "--add-agency", "x"}, &output), 1);
  EXPECT_EQ(RunCommand({make, "--out", pki_.dir, "--add-agency", "New_Co"}, &output), 1);
  EXPECT_EQ(ReadText(pki_.ca()), ca);
}

}  // namespace
}  // namespace tellonce::testing
