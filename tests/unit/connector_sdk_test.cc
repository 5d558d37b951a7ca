// Tests of the connector SDK (connectors/): request validation, RecordsFileSource,
// LoadConnectorConfig, and a real ConnectorServer on loopback with certificates made by
// certs/make-dev-pki for the test.

#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certs/identity.h"
#include "certs/tls.h"
#include "connectors/config.h"
#include "connectors/records_source.h"
#include "connectors/sdk.h"
#include "connectors/worker_pool.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/auth_context.h"
#include "gtest/gtest.h"
#include "tellonce/v1/connector.grpc.pb.h"
#include "tests/testing/loopback_connector.h"
#include "tests/testing/peer_certificate.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_ca.h"

namespace tellonce::connectors {
namespace {

namespace fs = std::filesystem;
using ::tellonce::testing::TempDir;
using ::tellonce::v1::FetchAttributesRequest;
using ::tellonce::v1::FetchAttributesResponse;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kCitizen[] = "37605030299";

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// ---------------------------------------------------------------------------
// ValidateFetchRequest

FetchAttributesRequest GoodRequest() {
  FetchAttributesRequest r;
  r.set_exchange_id("x-1");
  r.set_citizen_id(kCitizen);
  r.add_attributes("bank.interest_paid");
  r.add_attributes("bank.account_iban");
  r.set_consumer("tax");
  r.set_purpose("TAX_DEDUCTION_CHECK");
  r.mutable_basis()->set_consent_id("c-1");
  return r;
}

// The request is refused with INVALID_ARGUMENT "<field>: ..." and without the citizen id.
void ExpectRefused(const FetchAttributesRequest& r, const std::string& field) {
  absl::Status s = ValidateFetchRequest(r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), StartsWith(field + ": "));
  if (!r.citizen_id().empty()) {
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr(r.citizen_id())));
  }
}

TEST(ValidateFetchRequestTest, AcceptsAGoodRequest) {
  EXPECT_TRUE(ValidateFetchRequest(GoodRequest()).ok());
}

TEST(ValidateFetchRequestTest, AcceptsTheLimitsAndOptionalFieldsLeftEmpty) {
  FetchAttributesRequest r;
  r.set_citizen_id(std::string(kMaxCitizenIdBytes, '7'));
  for (size_t i = 0; i < kMaxAttributesPerFetch; ++i) r.add_attributes(absl::StrCat("a.n", i));
  EXPECT_TRUE(ValidateFetchRequest(r).ok()) << ValidateFetchRequest(r);
  // Free text may be any UTF-8 without control characters.
  r.mutable_basis()->set_mandate_id("income-tax-act");
  r.mutable_basis()->set_legal_reference("Tulumaksuseadus \xC2\xA7 12");
  r.set_consumer(std::string(kMaxStringBytes, 'c'));
  EXPECT_TRUE(ValidateFetchRequest(r).ok()) << ValidateFetchRequest(r);
}

TEST(ValidateFetchRequestTest, RefusesABadCitizenIdWithoutQuotingIt) {
  FetchAttributesRequest r = GoodRequest();
  r.set_citizen_id("");
  ExpectRefused(r, "citizen_id");
  r.set_citizen_id(std::string(kMaxCitizenIdBytes + 1, '7'));
  ExpectRefused(r, "citizen_id");
  r.set_citizen_id("3760503\n0299");
  ExpectRefused(r, "citizen_id");
  r.set_citizen_id("37605030299\x7f");
  ExpectRefused(r, "citizen_id");
  r.set_citizen_id("3760503029\xC3\xA4");  // printable, but not ASCII
  ExpectRefused(r, "citizen_id");
}

TEST(ValidateFetchRequestTest, RefusesNoAttributesOrTooMany) {
  FetchAttributesRequest r = GoodRequest();
  r.clear_attributes();
  ExpectRefused(r, "attributes");
  for (size_t i = 0; i <= kMaxAttributesPerFetch; ++i) r.add_attributes(absl::StrCat("a.n", i));
  ExpectRefused(r, "attributes");
}

TEST(ValidateFetchRequestTest, RefusesMalformedAttributeNamesNamingTheIndex) {
  for (const std::string& bad :
       {std::string(""), std::string("person"), std::string("Person.name"), std::string("person."),
        std::string(".name"), std::string("person..name"), std::string("person.na-me"),
        std::string("1person.name"), std::string("person._name"), std::string("person.name "),
        std::string("person.na\tme"), std::string("person.n\0a", 10),
        "person." + std::string(kMaxStringBytes, 'a')}) {
    FetchAttributesRequest r = GoodRequest();
    r.add_attributes(bad);
    SCOPED_TRACE(bad);
    ExpectRefused(r, "attributes[2]");
  }
}

TEST(ValidateFetchRequestTest, RefusesARepeatedAttributeNamingBothIndexes) {
  FetchAttributesRequest r = GoodRequest();
  r.add_attributes("bank.interest_paid");
  absl::Status s = ValidateFetchRequest(r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("attributes[2]: "));
  EXPECT_THAT(std::string(s.message()), HasSubstr("attributes[0]"));
}

TEST(ValidateFetchRequestTest, RefusesControlCharactersAndOversizedStringsNamingTheField) {
  struct Case {
    std::string field;
    void (*set)(FetchAttributesRequest*, const std::string&);
  };
  const std::vector<Case> cases = {
      {"exchange_id",
       [](FetchAttributesRequest* r, const std::string& v) { r->set_exchange_id(v); }},
      {"consumer", [](FetchAttributesRequest* r, const std::string& v) { r->set_consumer(v); }},
      {"purpose", [](FetchAttributesRequest* r, const std::string& v) { r->set_purpose(v); }},
      {"basis.consent_id", [](FetchAttributesRequest* r,
                              const std::string& v) { r->mutable_basis()->set_consent_id(v); }},
      {"basis.mandate_id", [](FetchAttributesRequest* r,
                              const std::string& v) { r->mutable_basis()->set_mandate_id(v); }},
      {"basis.legal_reference",
       [](FetchAttributesRequest* r, const std::string& v) {
         r->mutable_basis()->set_legal_reference(v);
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    for (const std::string& bad : {std::string("a\nb"), std::string("a\x1b[31m"),
                                   std::string("a\x7f"), std::string(kMaxStringBytes + 1, 'x')}) {
      FetchAttributesRequest r = GoodRequest();
      c.set(&r, bad);
      ExpectRefused(r, c.field);
    }
  }
}

// ---------------------------------------------------------------------------
// RecordsFileSource

const std::vector<HeldAttribute>& BankAttributes() {
  static const auto* held = new std::vector<HeldAttribute>{
      {"bank.account_iban", tellonce::v1::STRING}, {"bank.interest_paid", tellonce::v1::DECIMAL}};
  return *held;
}

const std::vector<HeldAttribute>& RegistryAttributes() {
  static const auto* held = new std::vector<HeldAttribute>{
      {"person.name", tellonce::v1::STRING}, {"person.date_of_birth", tellonce::v1::DATE}};
  return *held;
}

constexpr char kBankRecords[] = R"txt(# two customers
records {
  citizen_id: "37605030299"
  attributes { key: "bank.account_iban" value { string_value: "EE924265564639800631" } }
  attributes { key: "bank.interest_paid" value { decimal_value: "1234.56" } }
  as_of { seconds: 1738281600 }
}
records {
  citizen_id: "60101152782"
  attributes { key: "bank.account_iban" value { string_value: "EE124218709969087913" } }
}
)txt";

FetchContext Ask(const std::string& citizen, std::vector<std::string> attributes) {
  FetchContext ctx;
  ctx.citizen_id = citizen;
  ctx.attributes = std::move(attributes);
  return ctx;
}

class RecordsFileSourceTest : public ::testing::Test {
 protected:
  // Writes `contents` to a file in the temp dir and loads it with `held`.
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> LoadText(
      const std::string& contents, const std::vector<HeldAttribute>& held = BankAttributes()) {
    path_ = dir_.path() + "/records.textproto";
    WriteFile(path_, contents);
    return RecordsFileSource::Load(path_, held);
  }

  // Load fails with INVALID_ARGUMENT naming the file, `line` and `what`.
  void ExpectLoadFails(const std::string& contents, int line, const std::string& what,
                       const std::vector<HeldAttribute>& held = BankAttributes()) {
    absl::StatusOr<std::unique_ptr<RecordsFileSource>> source = LoadText(contents, held);
    ASSERT_FALSE(source.ok());
    EXPECT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument) << source.status();
    EXPECT_THAT(std::string(source.status().message()),
                StartsWith(absl::StrCat(path_, ":", line, ": ")));
    EXPECT_THAT(std::string(source.status().message()), HasSubstr(what));
  }

  TempDir dir_;
  std::string path_;
};

TEST_F(RecordsFileSourceTest, LoadsAGoodFile) {
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> source = LoadText(kBankRecords);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ((*source)->size(), 2u);
  EXPECT_EQ((*source)->held().size(), 2u);
}

TEST_F(RecordsFileSourceTest, LoadsTheShippedSampleData) {
  const char* src = std::getenv("TELLONCE_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "TELLONCE_SOURCE_DIR not set (run through ctest)";
  const std::string dir = std::string(src) + "/deploy/local/connectors/";
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> bank =
      RecordsFileSource::Load(dir + "bank-records.textproto", BankAttributes());
  ASSERT_TRUE(bank.ok()) << bank.status();
  EXPECT_EQ((*bank)->size(), 20u);
  std::vector<HeldAttribute> registry = RegistryAttributes();
  registry.push_back({"person.address", tellonce::v1::STRING});
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> people =
      RecordsFileSource::Load(dir + "registry-records.textproto", registry);
  ASSERT_TRUE(people.ok()) << people.status();
  EXPECT_EQ((*people)->size(), 22u);
}

TEST_F(RecordsFileSourceTest, RefusesAnAttributeTheAgencyDoesNotHold) {
  ExpectLoadFails(R"txt(records {
  citizen_id: "37605030299"
}
records {
  citizen_id: "60101152782"
  attributes { key: "person.shoe_size" value { string_value: "44" } }
}
)txt",
                  4, "records[1].attributes[\"person.shoe_size\"]: not an attribute");
}

TEST_F(RecordsFileSourceTest, RefusesTheWrongValueMemberForTheType) {
  ExpectLoadFails(R"txt(
records {
  citizen_id: "37605030299"
  attributes { key: "bank.interest_paid" value { string_value: "1234.56" } }
}
)txt",
                  2, "records[0].attributes[\"bank.interest_paid\"]: must be a decimal_value");
  ExpectLoadFails(R"txt(records {
  citizen_id: "37605030299"
  attributes { key: "bank.account_iban" value { integer_value: 42 } }
}
)txt",
                  1, "must be a string_value");
  ExpectLoadFails(R"txt(records {
  citizen_id: "37605030299"
  attributes { key: "bank.interest_paid" value { decimal_value: "1.234,56" } }
}
)txt",
                  1, "decimal_value");
}

TEST_F(RecordsFileSourceTest, RefusesADateThatIsNotAnExistingDay) {
  for (const char* bad : {"1976-02-30", "1976-5-03", "03.05.1976", "1976-13-01", "1900-02-29"}) {
    SCOPED_TRACE(bad);
    ExpectLoadFails(
        absl::StrCat("records {\n  citizen_id: \"37605030299\"\n",
                     "  attributes { key: \"person.date_of_birth\" value { date_value: \"", bad,
                     "\" } }\n}\n"),
        1, "records[0].attributes[\"person.date_of_birth\"]: date_value", RegistryAttributes());
  }
}

TEST_F(RecordsFileSourceTest, RefusesARepeatedOrMissingCitizen) {
  ExpectLoadFails(R"txt(records { citizen_id: "37605030299" }
records { citizen_id: "60101152782" }
records { citizen_id: "37605030299" }
)txt",
                  3, "records[2].citizen_id: repeats records[0]");
  ExpectLoadFails("records { citizen_id: \"1\" }\nrecords { }\n", 2,
                  "records[1].citizen_id: required");
  ExpectLoadFails("records { citizen_id: \"37605030299\\n\" }\n", 1, "printable ASCII");
}

TEST_F(RecordsFileSourceTest, RefusesSyntaxErrorsWithLineAndColumn) {
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> source =
      LoadText("records {\n  citizen_id: 37605030299\n}\n");
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(source.status().message()), StartsWith(path_ + ":2:"));
  source = LoadText("records { citizen_id: \"1\" shoe_size: 44 }\n");
  ASSERT_FALSE(source.ok());
  EXPECT_THAT(std::string(source.status().message()), StartsWith(path_ + ":1:"));
}

TEST_F(RecordsFileSourceTest, MissingFileIsNotFoundNamingThePath) {
  const std::string path = dir_.path() + "/no-such-file.textproto";
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> source =
      RecordsFileSource::Load(path, BankAttributes());
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(source.status().message()), HasSubstr(path));
}

TEST_F(RecordsFileSourceTest, RefusesAHeldAttributeListedTwiceOrWithoutType) {
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> source = LoadText(
      kBankRecords,
      {{"bank.account_iban", tellonce::v1::STRING}, {"bank.account_iban", tellonce::v1::STRING}});
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(source.status().message()), StartsWith("held[1]: "));
  source =
      LoadText(kBankRecords, {{"bank.account_iban", tellonce::v1::ATTRIBUTE_TYPE_UNSPECIFIED}});
  ASSERT_FALSE(source.ok());
  EXPECT_THAT(std::string(source.status().message()), StartsWith("held[0]: "));
}

TEST_F(RecordsFileSourceTest, FetchAnswersEachAskedAttributeInTheOrderAsked) {
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> source = LoadText(kBankRecords);
  ASSERT_TRUE(source.ok()) << source.status();
  absl::StatusOr<FetchAttributesResponse> answer =
      (*source)->Fetch(Ask(kCitizen, {"bank.interest_paid", "bank.account_iban"}));
  ASSERT_TRUE(answer.ok()) << answer.status();
  ASSERT_EQ(answer->attributes_size(), 2);
  EXPECT_EQ(answer->attributes(0).name(), "bank.interest_paid");
  EXPECT_EQ(answer->attributes(0).value().decimal_value(), "1234.56");
  EXPECT_FALSE(answer->attributes(0).not_found());
  EXPECT_EQ(answer->attributes(1).name(), "bank.account_iban");
  EXPECT_EQ(answer->attributes(1).value().string_value(), "EE924265564639800631");
  EXPECT_EQ(answer->as_of().seconds(), 1738281600);

  answer = (*source)->Fetch(Ask(kCitizen, {"bank.account_iban", "bank.interest_paid"}));
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->attributes(0).name(), "bank.account_iban");
  EXPECT_EQ(answer->attributes(1).name(), "bank.interest_paid");
}

TEST_F(RecordsFileSourceTest, FetchMarksAValueTheCitizenOrAgencyDoesNotHaveAsNotFound) {
  const absl::Time before = absl::Now() - absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> source = LoadText(kBankRecords);
  ASSERT_TRUE(source.ok()) << source.status();
  absl::StatusOr<FetchAttributesResponse> answer = (*source)->Fetch(
      Ask("60101152782", {"bank.interest_paid", "person.name", "bank.account_iban"}));
  ASSERT_TRUE(answer.ok()) << answer.status();
  ASSERT_EQ(answer->attributes_size(), 3);
  EXPECT_EQ(answer->attributes(0).name(), "bank.interest_paid");
  EXPECT_TRUE(answer->attributes(0).not_found());
  EXPECT_FALSE(answer->attributes(0).has_value());
  EXPECT_EQ(answer->attributes(1).name(), "person.name");  // not the bank's to answer
  EXPECT_TRUE(answer->attributes(1).not_found());
  EXPECT_FALSE(answer->attributes(1).has_value());
  EXPECT_EQ(answer->attributes(2).value().string_value(), "EE124218709969087913");
  // No as_of in the record: the time the file was loaded.
  EXPECT_GE(answer->as_of().seconds(), absl::ToUnixSeconds(before));
}

TEST_F(RecordsFileSourceTest, FetchOfAnUnknownCitizenIsNotFoundWithoutQuotingTheId) {
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> source = LoadText(kBankRecords);
  ASSERT_TRUE(source.ok()) << source.status();
  absl::StatusOr<FetchAttributesResponse> answer =
      (*source)->Fetch(Ask("49403136526", {"bank.account_iban"}));
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(answer.status().message()), Not(HasSubstr("49403136526")));
}

// ---------------------------------------------------------------------------
// LoadConnectorConfig

constexpr char kConfig[] = R"txt(
agency_id: "bank"
listen_address: "127.0.0.1:0"
trust_domain: "tellonce.local"
tls {
  ca_file: "pki/ca.pem"
  cert_file: "../pki/agencies/bank.pem"
  key_file: "/etc/tellonce/bank.key"
}
data_file: "bank-records.textproto"
)txt";

TEST(LoadConnectorConfigTest, ResolvesRelativePathsAgainstTheFilesFolder) {
  TempDir dir;
  fs::create_directories(dir.path() + "/conf");
  const std::string path = dir.path() + "/conf/bank.textproto";
  WriteFile(path, kConfig);
  absl::StatusOr<ConnectorOptions> options = LoadConnectorConfig(path);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->agency_id, "bank");
  EXPECT_EQ(options->listen_address, "127.0.0.1:0");
  EXPECT_EQ(options->trust_domain, "tellonce.local");
  EXPECT_EQ(options->tls.ca_file, dir.path() + "/conf/pki/ca.pem");
  EXPECT_EQ(options->tls.cert_file, dir.path() + "/pki/agencies/bank.pem");
  EXPECT_EQ(options->tls.key_file, "/etc/tellonce/bank.key");
  EXPECT_EQ(options->tls.crl_dir, "");  // optional, and absent
  EXPECT_EQ(options->data_file, dir.path() + "/conf/bank-records.textproto");
}

TEST(LoadConnectorConfigTest, ResolvesAgainstTheFilesFolderAlsoForARelativeConfigPath) {
  TempDir dir;
  WriteFile(dir.path() + "/bank.textproto", kConfig);
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  absl::StatusOr<ConnectorOptions> options = LoadConnectorConfig("bank.textproto");
  fs::current_path(cwd);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(fs::path(options->tls.ca_file).is_absolute()) << options->tls.ca_file;
  EXPECT_EQ(options->tls.ca_file, (fs::canonical(dir.path()) / "pki/ca.pem").string());
}

TEST(LoadConnectorConfigTest, RefusesAMissingRequiredFieldNamingFileAndField) {
  TempDir dir;
  const std::string path = dir.path() + "/bank.textproto";
  struct Case {
    std::string remove;
    std::string field;
  };
  for (const Case& c : std::vector<Case>{
           {"  cert_file: \"../pki/agencies/bank.pem\"\n", "tls.cert_file"},
           {"  ca_file: \"pki/ca.pem\"\n", "tls.ca_file"},
           {"  key_file: \"/etc/tellonce/bank.key\"\n", "tls.key_file"},
           {"agency_id: \"bank\"\n", "agency_id"},
           {"listen_address: \"127.0.0.1:0\"\n", "listen_address"},
           {"trust_domain: \"tellonce.local\"\n", "trust_domain"},
       }) {
    SCOPED_TRACE(c.field);
    std::string text = kConfig;
    const size_t at = text.find(c.remove);
    ASSERT_NE(at, std::string::npos);
    text.erase(at, c.remove.size());
    WriteFile(path, text);
    absl::StatusOr<ConnectorOptions> options = LoadConnectorConfig(path);
    ASSERT_FALSE(options.ok());
    EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(options.status().message()), path + ": " + c.field + ": required");
  }
}

TEST(LoadConnectorConfigTest, RefusesMalformedFieldsAndUnknownFields) {
  TempDir dir;
  const std::string path = dir.path() + "/bank.textproto";
  for (const auto& [from, to, want] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"\"127.0.0.1:0\"", "\"127.0.0.1\"", ": listen_address: "},
           {"\"127.0.0.1:0\"", "\"127.0.0.1:65536\"", ": listen_address: "},
           {"agency_id: \"bank\"", "agency_id: \"Bank\"", ": agency_id: "},
           {"\"tellonce.local\"", "\"Tellonce Local\"", ": trust_domain: "},
           {"data_file:", "data_files:", ":10:"},
       }) {
    SCOPED_TRACE(to);
    std::string text = kConfig;
    text.replace(text.find(from), from.size(), to);
    WriteFile(path, text);
    absl::StatusOr<ConnectorOptions> options = LoadConnectorConfig(path);
    ASSERT_FALSE(options.ok());
    EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(options.status().message()), StartsWith(path + want));
  }
}

TEST(LoadConnectorConfigTest, TlsReloadSettingsHaveDefaultsAndBounds) {
  TempDir dir;
  const std::string path = dir.path() + "/bank.textproto";
  WriteFile(path, kConfig);
  absl::StatusOr<ConnectorOptions> defaults = LoadConnectorConfig(path);
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->tls_watch.poll_interval, absl::Seconds(5));
  EXPECT_EQ(defaults->tls_watch.expiry_warning, absl::Hours(168));
  auto with = [&](const std::string& fields) {
    std::string text = kConfig;
    text.replace(text.find("tls {\n"), 6, "tls {\n  " + fields + "\n");
    WriteFile(path, text);
    return LoadConnectorConfig(path);
  };
  absl::StatusOr<ConnectorOptions> set = with("reload_interval_seconds: 2 expiry_warning_hours: 1");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->tls_watch.poll_interval, absl::Seconds(2));
  EXPECT_EQ(set->tls_watch.expiry_warning, absl::Hours(1));
  EXPECT_THAT(std::string(with("reload_interval_seconds: 3601").status().message()),
              StartsWith(path + ": tls.reload_interval_seconds: "));
  EXPECT_THAT(std::string(with("expiry_warning_hours: 9000").status().message()),
              StartsWith(path + ": tls.expiry_warning_hours: "));
}

TEST(LoadConnectorConfigTest, MissingFileIsNotFoundNamingThePath) {
  TempDir dir;
  absl::StatusOr<ConnectorOptions> options = LoadConnectorConfig(dir.path() + "/none.textproto");
  EXPECT_EQ(options.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(options.status().message()), HasSubstr(dir.path() + "/none.textproto"));
}

TEST(LoadConnectorConfigTest, LoadsTheShippedConfigurations) {
  const char* src = std::getenv("TELLONCE_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "TELLONCE_SOURCE_DIR not set (run through ctest)";
  const fs::path dir = fs::path(src) / "deploy/local/connectors";
  for (const std::string agency : {"registry", "bank", "tax"}) {
    SCOPED_TRACE(agency);
    absl::StatusOr<ConnectorOptions> options =
        LoadConnectorConfig((dir / (agency + ".textproto")).string());
    ASSERT_TRUE(options.ok()) << options.status();
    EXPECT_EQ(options->agency_id, agency);
    EXPECT_EQ(options->tls.cert_file,
              (dir.parent_path() / "pki/agencies" / (agency + ".pem")).lexically_normal().string());
    EXPECT_EQ(options->tls.crl_dir, (dir.parent_path() / "pki/crl").lexically_normal().string());
    EXPECT_EQ(options->data_file.empty(), agency == "tax");
  }
}

// ---------------------------------------------------------------------------
// ConnectorServer over real mutual TLS

// certs/make-dev-pki: under TELLONCE_SOURCE_DIR (set by CTest), else the nearest
// certs/make-dev-pki above the working directory.
fs::path MakeDevPkiScript() {
  if (const char* src = std::getenv("TELLONCE_SOURCE_DIR"); src != nullptr && *src != '\0') {
    return fs::path(src) / "certs" / "make-dev-pki";
  }
  fs::path dir = fs::current_path();
  for (int i = 0; i < 6; ++i) {
    if (fs::exists(dir / "certs" / "make-dev-pki")) return dir / "certs" / "make-dev-pki";
    dir = dir.parent_path();
  }
  return "certs/make-dev-pki";
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A source whose Fetch waits until released: for tests of the fetch threads.
class BlockingSource final : public AttributeSource {
 public:
  absl::StatusOr<FetchAttributesResponse> Fetch(const FetchContext& ctx) override {
    entered_.fetch_add(1);
    release_.WaitForNotification();
    FetchAttributesResponse response;
    response.add_attributes()->set_name(ctx.attributes[0]);
    response.mutable_attributes(0)->set_not_found(true);
    return response;
  }
  void Release() { release_.Notify(); }
  int entered() const { return entered_.load(); }

 private:
  absl::Notification release_;
  std::atomic<int> entered_{0};
};

// A source that remembers the last context it was given.
class RecordingSource final : public AttributeSource {
 public:
  absl::StatusOr<FetchAttributesResponse> Fetch(const FetchContext& ctx) override {
    last_ = ctx;
    FetchAttributesResponse response;
    for (const std::string& name : ctx.attributes) {
      response.add_attributes()->set_name(name);
    }
    return response;
  }
  FetchContext last_;
};

class ConnectorServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string pki = dir_->path() + "/pki";
    const std::string log = dir_->path() + "/make-dev-pki.log";
    const std::string command = absl::StrCat(
        "bash '", MakeDevPkiScript().string(), "' --out '", pki,
        "' --trust-domain tellonce.local --agency bank --agency tax >'", log, "' 2>&1");
    const int rc = std::system(command.c_str());
    ASSERT_TRUE(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << "make-dev-pki failed:\n"
                                                                   << ReadAll(log);
    records_ = dir_->path() + "/bank-records.textproto";
    WriteFile(records_, kBankRecords);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::string Pki(const std::string& file) { return dir_->path() + "/pki/" + file; }

  static ConnectorOptions BankOptions() {
    return ::tellonce::testing::LoopbackConnectorOptions(dir_->path() + "/pki", "bank", Pki("crl"));
  }

  // A channel to `port` presenting `cert`/`key` (paths under the PKI), expecting the
  // bank's certificate on the other side.
  static std::shared_ptr<grpc::Channel> ChannelAs(const std::string& cert, const std::string& key,
                                                  int port) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = certs::MakeChannelCredentials(
        {.ca_file = Pki("ca.pem"), .cert_file = Pki(cert), .key_file = Pki(key), .crl_dir = ""},
        "spiffe://tellonce.local/agency/bank");
    EXPECT_TRUE(creds.ok()) << creds.status();
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), *creds, args);
  }
  static std::shared_ptr<grpc::Channel> BrokerChannel(int port) {
    return ChannelAs("broker.pem", "broker.key", port);
  }

  static grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel,
                           const FetchAttributesRequest& request, FetchAttributesResponse* response,
                           absl::Duration deadline = absl::Seconds(10)) {
    auto stub = tellonce::v1::ConnectorService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    return stub->FetchAttributes(&context, request, response);
  }

  void SetUp() override { ASSERT_NE(dir_, nullptr); }

  // Serves the test's bank records (records_) as the bank's connector, in bank_.
  void ServeBankRecords() {
    absl::StatusOr<std::unique_ptr<RecordsFileSource>> source =
        RecordsFileSource::Load(records_, BankAttributes());
    ASSERT_TRUE(source.ok()) << source.status();
    bank_source_ = *std::move(source);
    absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
        ConnectorServer::Start(BankOptions(), bank_source_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    bank_ = *std::move(server);
  }

  static TempDir* dir_;
  static std::string records_;
  // Set by ServeBankRecords; the server goes first.
  std::unique_ptr<RecordsFileSource> bank_source_;
  std::unique_ptr<ConnectorServer> bank_;
};

TempDir* ConnectorServerTest::dir_ = nullptr;
std::string ConnectorServerTest::records_;

TEST_F(ConnectorServerTest, ServesTheBrokerTheValues) {
  ASSERT_NO_FATAL_FAILURE(ServeBankRecords());
  ASSERT_GT(bank_->port(), 0);

  FetchAttributesResponse response;
  grpc::Status status = Call(BrokerChannel(bank_->port()), GoodRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.attributes_size(), 2);
  EXPECT_EQ(response.attributes(0).name(), "bank.interest_paid");
  EXPECT_EQ(response.attributes(0).value().decimal_value(), "1234.56");
  EXPECT_EQ(response.attributes(1).value().string_value(), "EE924265564639800631");
  EXPECT_EQ(response.as_of().seconds(), 1738281600);
}

grpc::Status CallBatch(const std::shared_ptr<grpc::Channel>& channel,
                       const tellonce::v1::FetchAttributesBatchRequest& request,
                       tellonce::v1::FetchAttributesBatchResponse* response) {
  auto stub = tellonce::v1::ConnectorService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  return stub->FetchAttributesBatch(&context, request, response);
}

TEST_F(ConnectorServerTest, ABatchAnswersEachRequestWithItsOwnOutcome) {
  ASSERT_NO_FATAL_FAILURE(ServeBankRecords());

  tellonce::v1::FetchAttributesBatchRequest batch;
  for (int i = 0; i < 10; ++i) *batch.add_requests() = GoodRequest();
  batch.mutable_requests(3)->set_citizen_id("00000000000");  // not a customer
  batch.mutable_requests(7)->set_attributes(0, "Not A Name");
  tellonce::v1::FetchAttributesBatchResponse response;
  grpc::Status status = CallBatch(BrokerChannel(bank_->port()), batch, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outcomes_size(), 10);
  for (int i = 0; i < 10; ++i) {
    const tellonce::v1::FetchOutcome& o = response.outcomes(i);
    if (i == 3) {
      EXPECT_EQ(o.code(), grpc::StatusCode::NOT_FOUND);
      EXPECT_EQ(o.message().find("00000000000"), std::string::npos) << o.message();
    } else if (i == 7) {
      EXPECT_EQ(o.code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_TRUE(absl::StartsWith(o.message(), "requests[7].attributes[0]: ")) << o.message();
      EXPECT_EQ(o.response().attributes_size(), 0);
    } else {
      EXPECT_EQ(o.code(), 0) << i << ": " << o.message();
      ASSERT_EQ(o.response().attributes_size(), 2) << i;
      EXPECT_EQ(o.response().attributes(0).value().decimal_value(), "1234.56");
    }
  }
}

TEST_F(ConnectorServerTest, RefusesAnEmptyOrOversizedBatchAndAgencyCallers) {
  ASSERT_NO_FATAL_FAILURE(ServeBankRecords());
  auto broker = BrokerChannel(bank_->port());

  tellonce::v1::FetchAttributesBatchRequest empty;
  tellonce::v1::FetchAttributesBatchResponse response;
  grpc::Status status = CallBatch(broker, empty, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(status.error_message(), "requests: ")) << status.error_message();

  tellonce::v1::FetchAttributesBatchRequest oversized;
  FetchAttributesRequest small;
  small.set_citizen_id("1");
  small.add_attributes("bank.iban");
  for (size_t i = 0; i <= kMaxFetchesPerBatch; ++i) *oversized.add_requests() = small;
  status = CallBatch(broker, oversized, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(status.error_message(), "requests: more than"))
      << status.error_message();

  tellonce::v1::FetchAttributesBatchRequest one;
  *one.add_requests() = GoodRequest();
  status =
      CallBatch(ChannelAs("agencies/tax.pem", "agencies/tax.key", bank_->port()), one, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ConnectorServerTest, ABatchToAConnectorWithoutSourceIsUnimplementedPerRequest) {
  class Handler final : public ChangeHandler {
    absl::Status OnChange(const ChangeContext&) override { return absl::OkStatus(); }
  } handler;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(BankOptions(), nullptr, &handler);
  ASSERT_TRUE(server.ok()) << server.status();
  tellonce::v1::FetchAttributesBatchRequest batch;
  *batch.add_requests() = GoodRequest();
  *batch.add_requests() = GoodRequest();
  tellonce::v1::FetchAttributesBatchResponse response;
  grpc::Status status = CallBatch(BrokerChannel((*server)->port()), batch, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outcomes_size(), 2);
  EXPECT_EQ(response.outcomes(0).code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(response.outcomes(1).code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ConnectorServerTest, RefusesAnAgencyCertificateWithPermissionDenied) {
  ASSERT_NO_FATAL_FAILURE(ServeBankRecords());
  for (const std::string agency : {"tax", "bank"}) {
    SCOPED_TRACE(agency);
    FetchAttributesResponse response;
    grpc::Status status =
        Call(ChannelAs("agencies/" + agency + ".pem", "agencies/" + agency + ".key", bank_->port()),
             GoodRequest(), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(agency));
    EXPECT_EQ(response.attributes_size(), 0);
  }
}

TEST_F(ConnectorServerTest, MapsBadRequestsAndUnknownCitizensToTheirCodes) {
  ASSERT_NO_FATAL_FAILURE(ServeBankRecords());
  auto channel = BrokerChannel(bank_->port());

  FetchAttributesRequest bad = GoodRequest();
  bad.add_attributes("bank.interest_paid");
  FetchAttributesResponse response;
  grpc::Status status = Call(channel, bad, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("attributes[2]: "));

  FetchAttributesRequest unknown = GoodRequest();
  unknown.set_citizen_id("49403136526");
  status = Call(channel, unknown, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), Not(HasSubstr("49403136526")));

  // The standard health service answers too.
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest check;
  grpc::health::v1::HealthCheckResponse serving;
  ASSERT_TRUE(health->Check(&context, check, &serving).ok());
  EXPECT_EQ(serving.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(ConnectorServerTest, PassesTheRequestToTheSourceAsAContext) {
  RecordingSource source;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(BankOptions(), &source);
  ASSERT_TRUE(server.ok()) << server.status();
  FetchAttributesResponse response;
  const absl::Time before = absl::Now();
  ASSERT_TRUE(Call(BrokerChannel((*server)->port()), GoodRequest(), &response).ok());
  (*server)->Shutdown();  // the source has returned
  EXPECT_EQ(source.last_.exchange_id, "x-1");
  EXPECT_EQ(source.last_.citizen_id, kCitizen);
  EXPECT_THAT(source.last_.attributes,
              ::testing::ElementsAre("bank.interest_paid", "bank.account_iban"));
  EXPECT_EQ(source.last_.consumer, "tax");
  EXPECT_EQ(source.last_.purpose, "TAX_DEDUCTION_CHECK");
  EXPECT_EQ(source.last_.basis.consent_id(), "c-1");
  EXPECT_GT(source.last_.deadline, before + absl::Seconds(5));
  EXPECT_LE(source.last_.deadline, before + absl::Seconds(11));
}

TEST_F(ConnectorServerTest, ACallWithoutDeadlineReachesTheSourceWithAnInfiniteDeadline) {
  RecordingSource source;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(BankOptions(), &source);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = tellonce::v1::ConnectorService::NewStub(BrokerChannel((*server)->port()));
  grpc::ClientContext context;  // no deadline
  FetchAttributesResponse response;
  ASSERT_TRUE(stub->FetchAttributes(&context, GoodRequest(), &response).ok());
  (*server)->Shutdown();
  EXPECT_EQ(source.last_.deadline, absl::InfiniteFuture());
}

// Polls `done` every 10 ms for up to 10 s; its last answer.
bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 1000 && !done(); ++i) absl::SleepFor(absl::Milliseconds(10));
  return done();
}

TEST_F(ConnectorServerTest, FetchesBeyondTheQueueAreRefusedAsResourceExhausted) {
  BlockingSource source;
  ConnectorOptions options = BankOptions();
  options.fetch_threads = 1;
  options.max_queued_fetches = 1;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(options, &source);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = BrokerChannel((*server)->port());

  std::atomic<int> ok{0}, exhausted{0}, other{0};
  auto call = [&] {
    FetchAttributesResponse response;
    grpc::Status status = Call(channel, GoodRequest(), &response);
    if (status.ok()) {
      ++ok;
    } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++exhausted;
    } else {
      ++other;
    }
  };
  // One call runs, blocked in the source; of two more, one waits in the queue and the
  // other is refused at once.
  std::vector<std::thread> callers;
  callers.emplace_back(call);
  const bool entered = WaitFor([&] { return source.entered() == 1; });
  if (entered) {
    callers.emplace_back(call);
    callers.emplace_back(call);
  }
  const bool refused = entered && WaitFor([&] { return exhausted.load() == 1; });
  source.Release();
  for (std::thread& t : callers) t.join();
  EXPECT_TRUE(entered) << "the first fetch never reached the source";
  EXPECT_TRUE(refused) << "no fetch was refused while the queue was full";
  EXPECT_EQ(ok.load(), 2);
  EXPECT_EQ(exhausted.load(), 1);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(source.entered(), 2);
}

TEST_F(ConnectorServerTest, ShutdownLetsAnInFlightFetchFinish) {
  BlockingSource source;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(BankOptions(), &source);
  ASSERT_TRUE(server.ok()) << server.status();
  grpc::Status in_flight;
  std::thread caller([&] {
    FetchAttributesResponse response;
    in_flight = Call(BrokerChannel((*server)->port()), GoodRequest(), &response);
  });
  const bool entered = WaitFor([&] { return source.entered() == 1; });
  std::thread stopper([&] { (*server)->Shutdown(); });
  absl::SleepFor(absl::Milliseconds(200));  // Shutdown is now waiting for the call
  source.Release();
  stopper.join();
  caller.join();
  EXPECT_TRUE(entered);
  EXPECT_TRUE(in_flight.ok()) << in_flight.error_message();
  (*server)->Shutdown();  // idempotent
}

TEST_F(ConnectorServerTest, RefusesToStartWithAnotherAgencysCertificate) {
  RecordingSource source;
  ConnectorOptions options = BankOptions();
  options.tls.cert_file = Pki("agencies/tax.pem");
  options.tls.key_file = Pki("agencies/tax.key");
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(options, &source);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()), StartsWith("tls.cert_file: "));
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("agency/tax"));
}

TEST_F(ConnectorServerTest, RefusesToStartWithoutARequiredOption) {
  RecordingSource source;
  struct Case {
    std::string field;
    void (*clear)(ConnectorOptions*);
  };
  for (const Case& c : std::vector<Case>{
           {"agency_id", [](ConnectorOptions* o) { o->agency_id.clear(); }},
           {"listen_address", [](ConnectorOptions* o) { o->listen_address.clear(); }},
           {"trust_domain", [](ConnectorOptions* o) { o->trust_domain.clear(); }},
           {"tls.ca_file", [](ConnectorOptions* o) { o->tls.ca_file.clear(); }},
           {"tls.cert_file", [](ConnectorOptions* o) { o->tls.cert_file.clear(); }},
           {"tls.key_file", [](ConnectorOptions* o) { o->tls.key_file.clear(); }},
           {"fetch_threads", [](ConnectorOptions* o) { o->fetch_threads = 0; }},
       }) {
    SCOPED_TRACE(c.field);
    ConnectorOptions options = BankOptions();
    c.clear(&options);
    absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
        ConnectorServer::Start(options, &source);
    ASSERT_FALSE(server.ok());
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(server.status().message()), StartsWith(c.field + ": "));
  }
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(BankOptions(), nullptr);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ConnectorServerTest, AnAddressInUseIsUnavailable) {
  RecordingSource source;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> first =
      ConnectorServer::Start(BankOptions(), &source);
  ASSERT_TRUE(first.ok()) << first.status();
  ConnectorOptions options = BankOptions();
  options.listen_address = absl::StrCat("127.0.0.1:", (*first)->port());
  absl::StatusOr<std::unique_ptr<ConnectorServer>> second =
      ConnectorServer::Start(options, &source);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()), StartsWith("listen_address: "));
}

TEST_F(ConnectorServerTest, ReloadTlsServesARotatedCertificateAndRefusesAGarbageOne) {
  // The bank's certificate and key in a folder of this test's own, rotated below.
  TempDir own;
  ConnectorOptions options = BankOptions();
  options.tls.cert_file = own.path() + "/bank.pem";
  options.tls.key_file = own.path() + "/bank.key";
  options.tls_watch.poll_interval = absl::ZeroDuration();  // ReloadTls only
  fs::copy_file(Pki("agencies/bank.pem"), options.tls.cert_file);
  fs::copy_file(Pki("agencies/bank.key"), options.tls.key_file);
  RecordingSource source;
  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(options, &source);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  auto call_serial = [&](const std::shared_ptr<grpc::Channel>& channel) {
    auto stub = tellonce::v1::ConnectorService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    FetchAttributesResponse response;
    grpc::Status status = stub->FetchAttributes(&context, GoodRequest(), &response);
    return status.ok() ? ::tellonce::testing::PeerSerial(context) : std::string("failed");
  };
  auto old_channel = BrokerChannel(port);
  const std::string old_serial = call_serial(old_channel);
  ASSERT_NE(old_serial, "failed");
  EXPECT_EQ((*server)->tls_status().cert_serial, old_serial);

  const std::string new_serial =
      ::tellonce::testing::IssueLeaf(dir_->path() + "/pki", "spiffe://tellonce.local/agency/bank",
                                     options.tls.cert_file, options.tls.key_file);
  ASSERT_FALSE(new_serial.empty());
  ASSERT_TRUE((*server)->ReloadTls().ok());
  EXPECT_EQ((*server)->tls_status().reloads, 1u);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (call_serial(BrokerChannel(port)) != new_serial && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(call_serial(BrokerChannel(port)), new_serial);
  EXPECT_EQ(call_serial(old_channel), old_serial) << "the old connection must keep working";

  WriteFile(options.tls.cert_file, "garbage");
  absl::Status refused = (*server)->ReloadTls();
  EXPECT_THAT(std::string(refused.message()), HasSubstr(options.tls.cert_file));
  EXPECT_EQ((*server)->tls_status().refused_reloads, 1u);
  absl::SleepFor(absl::Milliseconds(1500));
  EXPECT_EQ(call_serial(BrokerChannel(port)), new_serial);
}

// The SDK's worker pool (connectors/worker_pool.h, split out of the server): one
// thread runs tasks in submission order, a full queue refuses at once, and Stop runs
// what was queued before it joins.
TEST(WorkerPoolTest, RunsInOrderRefusesWhenFullAndDrainsOnStop) {
  absl::Notification started;
  absl::Notification release;
  std::vector<int> ran;  // written by the one worker thread only, read after Stop
  WorkerPool pool(/*threads=*/1, /*max_queued=*/2);
  EXPECT_EQ(pool.threads(), 1u);
  ASSERT_TRUE(pool.Submit([&] {
    started.Notify();
    release.WaitForNotification();
  }));
  started.WaitForNotification();  // the thread is busy and the queue is empty
  EXPECT_TRUE(pool.Submit([&] { ran.push_back(1); }));
  EXPECT_TRUE(pool.Submit([&] { ran.push_back(2); }));
  EXPECT_FALSE(pool.Submit([&] { ran.push_back(3); }));  // full: refused, never run
  release.Notify();
  pool.Stop();
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
  EXPECT_FALSE(pool.Submit([&] { ran.push_back(4); }));  // stopped
  EXPECT_EQ(ran.size(), 2u);
}

}  // namespace
}  // namespace tellonce::connectors
