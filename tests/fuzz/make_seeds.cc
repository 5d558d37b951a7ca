// Writes the seed corpus of every harness: `fuzz_make_seeds tests/fuzz/corpus` creates
// <harness>/seed-* files (and overwrites earlier seeds, never other inputs). The seeds are
// valid inputs of each entry point (so fuzzing starts from the paths that accept) plus a
// few boundary values. Signed seeds use the fixed keys of tests/fuzz/keys and the fixed
// clock of fuzz_support.h, so they stay valid. Not a test; run by hand when an input
// format changes (tests/fuzz/README.md).

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certs/signed_messages.h"
#include "cli/audit.h"
#include "consent/registry.h"
#include "google/protobuf/util/json_util.h"
#include "proto/time.h"
#include "tellonce/v1/connector.pb.h"
#include "tellonce/v1/exchange.pb.h"
#include "tellonce/v1/notification.pb.h"
#include "tellonce/v1/transparency.pb.h"
#include "tests/fuzz/cli_driver.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace tellonce;  // NOLINT: a tool, not library code
using fuzz::kNow;

std::string g_root;

void Put(const std::string& harness, const std::string& name, const std::string& bytes) {
  const std::filesystem::path dir = std::filesystem::path(g_root) / harness;
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / ("seed-" + name), std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::string Byte(int b) { return std::string(1, static_cast<char>(b)); }
std::string Len16(const std::string& s) {
  return Byte((s.size() >> 8) & 0xff) + Byte(s.size() & 0xff) + s;
}
std::string Copy(const std::string& relative) {
  return fuzz::ReadOrDie(fuzz::SourcePath(relative));
}

void Configs() {
  Put("broker_config", "deploy-local", Copy("deploy/local/broker.textproto"));
  Put("broker_config", "minimal",
      "tls { ca_file: \"ca.pem\" cert_file: \"b.pem\" key_file: \"b.key\" }\n"
      "signing { key_file: \"s.key\" key_id: \"k1\" }\n"
      "data_dir: \"data\"\ndirectory_file: \"directory.textproto\"\n"
      "limits { max_receive_message_bytes: 1024 max_string_bytes: 1 max_page_size: 1 }\n"
      "listen_address: \"[::1]:0\"\n");
  for (const char* agency : {"bank", "registry", "tax", "benefits"}) {
    Put("connector_config", agency,
        Copy(absl::StrCat("deploy/local/connectors/", agency, ".textproto")));
  }
  std::string directory = Copy("deploy/local/directory.textproto");
  const std::string from = "pki/idp/jwks.json";
  directory.replace(directory.find(from), from.size(), "idp.json");
  Put("directory", "deploy-local", directory);
}

void ConsentRequests() {
  v1::GrantConsentRequest grant;
  grant.set_request_id("r-1");
  grant.set_citizen_id("37605030299");
  grant.set_consumer("tax");
  grant.add_attributes("person.name");
  grant.add_attributes("person.address");
  grant.set_purpose("TAX_DEDUCTION_CHECK");
  *grant.mutable_expires_at() = ToProtoTime(kNow + absl::Hours(24 * 30));
  grant.set_mode(v1::ONE_TIME);
  Put("consent_request", "grant", Byte(0) + grant.SerializeAsString());
  *grant.mutable_valid_from() = ToProtoTime(kNow + absl::Hours(1));
  grant.set_mode(v1::UNTIL_EXPIRY);
  Put("consent_request", "grant-later", Byte(0) + grant.SerializeAsString());
  v1::RevokeConsentRequest revoke;
  revoke.set_consent_id("01J0000000000000000000000Z");
  revoke.set_citizen_id("37605030299");
  revoke.set_reason("changed my mind");
  Put("consent_request", "revoke", Byte(1) + revoke.SerializeAsString());
  v1::GetConsentRequest get;
  get.set_consent_id("01J0000000000000000000000Z");
  get.set_citizen_id("37605030299");
  Put("consent_request", "get", Byte(2) + get.SerializeAsString());
  v1::ListConsentsRequest list;
  list.set_citizen_id("37605030299");
  list.set_status(v1::ACTIVE);
  list.set_page_size(10);
  list.set_page_token("01J0000000000000000000000Z");
  Put("consent_request", "list", Byte(3) + list.SerializeAsString());

  v1::GetAttributesRequest get_attributes;
  get_attributes.set_request_id("x-1");
  get_attributes.set_citizen_id("37605030299");
  get_attributes.add_attributes("person.name");
  get_attributes.add_attributes("bank.interest_paid");
  get_attributes.add_attributes("no.such_attribute");
  get_attributes.set_purpose("TAX_ASSESSMENT");
  Put("exchange_request", "get-attributes", get_attributes.SerializeAsString());

  v1::PublishChangeRequest publish;
  publish.set_event_id("ev-1");
  publish.set_citizen_id("37605030299");
  publish.set_event_type("ADDRESS_CHANGED");
  publish.add_attributes("person.address");
  *publish.mutable_occurred_at() = ToProtoTime(kNow - absl::Hours(1));
  Put("publish_request", "registry-address", Byte(0) + publish.SerializeAsString());
  publish.clear_attributes();
  publish.add_attributes("bank.interest_paid");
  Put("publish_request", "bank-interest", Byte(1) + publish.SerializeAsString());
  Put("publish_request", "registry-not-authoritative", Byte(0) + publish.SerializeAsString());
}

void Connector() {
  v1::FetchAttributesResponse answer;
  v1::FetchedAttribute* name = answer.add_attributes();
  name->set_name("person.name");
  name->mutable_value()->set_string_value("Mari Maasikas");
  v1::FetchedAttribute* address = answer.add_attributes();
  address->set_name("person.address");
  address->set_not_found(true);
  *answer.mutable_as_of() = ToProtoTime(kNow - absl::Hours(24));
  Put("connector_answer", "name-and-address", Byte(0x03) + Byte(12) + answer.SerializeAsString());
  v1::FetchAttributesResponse typed;
  v1::FetchedAttribute* dob = typed.add_attributes();
  dob->set_name("person.date_of_birth");
  dob->mutable_value()->set_date_value("1976-05-03");
  v1::FetchedAttribute* interest = typed.add_attributes();
  interest->set_name("bank.interest_paid");
  interest->mutable_value()->set_decimal_value("123.45");
  Put("connector_answer", "date-and-decimal", Byte(0x1c) + Byte(12) + typed.SerializeAsString());
  Put("connector_answer", "unasked", Byte(0x01) + Byte(12) + typed.SerializeAsString());
  Put("connector_answer", "too-long", Byte(0x01) + Byte(2) + answer.SerializeAsString());

  v1::FetchAttributesRequest fetch;
  fetch.set_exchange_id("x-1");
  fetch.set_citizen_id("37605030299");
  fetch.add_attributes("person.name");
  fetch.add_attributes("person.address");
  fetch.set_consumer("tax");
  fetch.set_purpose("TAX_ASSESSMENT");
  fetch.mutable_basis()->set_consent_id("01J0000000000000000000000Z");
  Put("connector_request", "fetch", Byte(0) + fetch.SerializeAsString());
  v1::DeliverChangeRequest change;
  change.set_event_id("ev-1");
  change.set_provider("registry");
  change.set_citizen_id("37605030299");
  change.set_event_type("ADDRESS_CHANGED");
  change.add_attributes("person.address");
  *change.mutable_occurred_at() = ToProtoTime(kNow);
  *change.mutable_published_at() = ToProtoTime(kNow);
  change.set_delivery_id("7");
  change.mutable_basis()->set_mandate_id("tax-address");
  Put("connector_request", "change", Byte(1) + change.SerializeAsString());
  v1::FetchAttributesBatchRequest batch;
  *batch.add_requests() = fetch;
  *batch.add_requests() = fetch;
  Put("connector_request", "batch", Byte(2) + batch.SerializeAsString());
}

void Signed() {
  v1::ReceiptBody body;
  body.set_version("tellonce-receipt-1");
  body.set_record_id("01J0000000000000000000000Z");
  *body.mutable_issued_at() = ToProtoTime(kNow);
  body.set_issuer(fuzz::kBrokerId);
  body.set_principal_id("37605030299");
  body.set_controller("tax");
  body.add_attributes("person.name");
  *body.mutable_valid_from() = ToProtoTime(kNow);
  *body.mutable_expires_at() = ToProtoTime(kNow + absl::Hours(24));
  body.set_collection_method("portal");
  absl::StatusOr<v1::ConsentReceipt> receipt = certs::SignReceipt(body, fuzz::BrokerSigningKey());
  if (!receipt.ok()) std::abort();
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(*receipt, &json);
  Put("receipt", "json", Byte(0) + json);
  Put("receipt", "wire", Byte(1) + receipt->SerializeAsString());
  Put("receipt", "body", Byte(2) + body.SerializeAsString());

  v1::Checkpoint checkpoint;
  checkpoint.set_issuer(fuzz::kBrokerId);
  checkpoint.set_tree_size(0);
  const certs::Hash empty = certs::EmptyTreeHash();
  checkpoint.set_root_hash(std::string(empty.begin(), empty.end()));
  *checkpoint.mutable_signed_at() = ToProtoTime(kNow);
  v1::SignedCheckpoint signed_checkpoint;
  signed_checkpoint.set_body(checkpoint.SerializeAsString());
  signed_checkpoint.set_signature(
      *fuzz::BrokerSigningKey().Sign(certs::SignedKind::kCheckpoint, signed_checkpoint.body()));
  signed_checkpoint.set_signature_algorithm(std::string(certs::kSignatureAlgorithm));
  signed_checkpoint.set_key_id(fuzz::kSigningKeyId);
  Put("checkpoint", "empty-tree", Byte(0) + signed_checkpoint.SerializeAsString());
  Put("checkpoint", "body-empty-tree", Byte(1) + checkpoint.SerializeAsString());
  checkpoint.set_tree_size(150);
  *checkpoint.mutable_signed_at() = ToProtoTime(absl::FromUnixSeconds(253402300799));
  Put("checkpoint", "body-large", Byte(1) + checkpoint.SerializeAsString());

  // Proofs: an arbitrary inclusion claim, an arbitrary consistency claim, differential.
  Put("proof", "inclusion",
      Byte(0) + Byte(0) + std::string(16, '\0') + std::string(64, 'a') + std::string(96, 'b'));
  Put("proof", "consistency",
      Byte(0) + Byte(1) + std::string(7, '\0') + Byte(3) + std::string(7, '\0') + Byte(7) +
          std::string(128, 'c'));
  Put("proof", "differential",
      Byte(1) + Byte(1) + Byte(44) + Len16("salt") + Byte(0) + Byte(9) + Byte(0) + Byte(30) +
          Byte(0) + Byte(5) + Byte(1) + Byte(2));

  // Citizen assertions at fuzz::kNow, for the sample portal.
  certs::CitizenAssertionClaims claims;
  claims.issuer = "https://eid.tellonce.local";
  claims.audience = "tellonce-portal";
  claims.citizen_id = "37605030299";
  claims.issued_at = kNow - absl::Minutes(1);
  claims.token_id = "jti-1";
  absl::StatusOr<std::string> token = fuzz::IdpSigner().Mint(claims);
  if (!token.ok()) std::abort();
  Put("citizen_assertion", "token", Byte(0) + *token);
  const std::string header = R"({"alg":"ES256","kid":"fuzz-idp","typ":"JWT"})";
  const std::string payload = absl::StrCat(
      R"({"iss":"https://eid.tellonce.local","aud":["tellonce-portal","x"],"sub":"37605030299",)",
      R"("iat":)", absl::ToUnixSeconds(kNow) - 60, R"(,"exp":)", absl::ToUnixSeconds(kNow) + 240,
      R"(,"nbf":)", absl::ToUnixSeconds(kNow) - 60, R"(,"jti":"j","azp":"tellonce-portal"})");
  Put("citizen_assertion", "es256-claims", Byte(1) + Len16(header) + payload);
  Put("citizen_assertion", "rs256-claims",
      Byte(2) + Len16(R"({"alg":"RS256","kid":"fuzz-rsa"})") + payload);
  Put("citizen_assertion", "alg-none",
      Byte(1) + Len16(R"({"alg":"none","kid":"fuzz-idp"})") + payload);
  Put("citizen_assertion", "jwks", Byte(3) + fuzz::IdpSigner().JwksJson());
}

void AuditLog() {
  // A log of 5 events, its own root (bit 0 set), checkpoints of sizes 5 and 3.
  cli::LogCopy copy;
  for (uint64_t i = 0; i < 5; ++i) {
    v1::AccessEvent e;
    e.set_exchange_id(absl::StrCat("x", i));
    e.set_consumer("tax");
    e.set_citizen_id("37605030299");
    const std::string bytes = e.SerializeAsString();
    copy.events.push_back({i, bytes});
    copy.subtrees.push_back({0, i, certs::LeafHash(bytes)});
  }
  copy.claimed_size = 5;
  const std::string path = fuzz::WriteScratch("seed.export", "");
  if (!cli::WriteExportFile(path, copy).ok()) std::abort();
  const std::string file = fuzz::ReadOrDie(path);
  Put("audit_log", "five-ok", Byte(1) + Byte(0) + Byte(5) + file);
  Put("audit_log", "three-of-five-ok", Byte(1) + Byte(0) + Byte(3) + file);
  Put("audit_log", "five-wrong-root", Byte(0) + Byte(0) + Byte(5) + std::string(32, 'r') + file);
  // The same log as data-directory records (audit_data_dir_fuzz.cc): events, leaf and
  // interior subtree hashes, a checkpoint record and the size in the metadata.
  std::string records;
  for (uint64_t i = 0; i < 5; ++i) {
    records += Byte(0) + Byte(static_cast<int>(i)) + Len16(copy.events[i].bytes);
    const certs::Hash leaf = certs::LeafHash(copy.events[i].bytes);
    records +=
        Byte(1) + Byte(0) + Byte(static_cast<int>(i)) + std::string(leaf.begin(), leaf.end());
  }
  const certs::Hash node =
      certs::NodeHash(certs::LeafHash(copy.events[0].bytes), certs::LeafHash(copy.events[1].bytes));
  records += Byte(1) + Byte(1) + Byte(0) + std::string(node.begin(), node.end());
  records += Byte(3) + Len16("5");
  Put("audit_data_dir", "five-ok", Byte(1) + Byte(0) + Byte(5) + records);
  Put("audit_data_dir", "five-wrong-interior",
      Byte(1) + Byte(0) + Byte(5) + records + Byte(1) + Byte(2) + Byte(0) + std::string(32, 'x'));
  Put("audit_data_dir", "malformed-key",
      Byte(1) + Byte(0) + Byte(5) + records + Byte(4) + Len16("e12") + Len16("v"));
  std::swap(copy.events[1].bytes, copy.events[2].bytes);
  if (!cli::WriteExportFile(path, copy).ok()) std::abort();
  Put("audit_log", "swapped", Byte(1) + Byte(0) + Byte(5) + fuzz::ReadOrDie(path));
}

void Listings() {
  v1::ListConsentsRequest consents;
  consents.set_citizen_id("37605030299");
  consents.set_page_size(7);
  Put("page_token", "consents", Byte(0) + Byte(0) + consents.SerializeAsString());
  Put("page_token", "consents-real-token", Byte(0) + Byte(2) + consents.SerializeAsString());
  v1::ListAccessEventsRequest events;
  events.set_citizen_id("37605030299");
  events.set_page_size(4);
  Put("page_token", "events", Byte(1) + Byte(0) + events.SerializeAsString());
  Put("page_token", "events-consumer", Byte(1) + Byte(1) + events.SerializeAsString());
  events.set_page_token("30");
  *events.mutable_from() = ToProtoTime(kNow - absl::Minutes(100));
  *events.mutable_to() = ToProtoTime(kNow - absl::Minutes(20));
  Put("page_token", "events-window", Byte(1) + Byte(0) + events.SerializeAsString());
  // The largest 64-bit token: nothing can come after it.
  events.set_page_token("18446744073709551615");
  Put("page_token", "events-max-token", Byte(1) + Byte(0) + events.SerializeAsString());
  Put("transparency_request", "list", Byte(0) + events.SerializeAsString());
  v1::ListDeliveriesRequest deliveries;
  deliveries.set_subscriber("tax");
  deliveries.set_state(v1::Delivery::DEAD);
  deliveries.set_page_size(4);
  Put("page_token", "deliveries", Byte(2) + Byte(0) + deliveries.SerializeAsString());
  deliveries.set_page_token("18446744073709551615");
  Put("page_token", "deliveries-max-token", Byte(2) + Byte(0) + deliveries.SerializeAsString());
  Put("admin_request", "list", Byte(0) + deliveries.SerializeAsString());
  v1::RetryDeliveriesRequest retry;
  retry.add_delivery_ids("12345");
  retry.add_delivery_ids("not-a-number");
  Put("admin_request", "retry", Byte(1) + retry.SerializeAsString());

  v1::GetInclusionProofRequest inclusion;
  inclusion.set_index(17);
  inclusion.set_tree_size(100);
  Put("transparency_request", "inclusion", Byte(1) + inclusion.SerializeAsString());
  v1::GetConsistencyProofRequest consistency;
  consistency.set_old_size(37);
  consistency.set_new_size(150);
  Put("transparency_request", "consistency", Byte(2) + consistency.SerializeAsString());
  v1::ExportAccessLogRequest export_request;
  export_request.set_start(140);
  export_request.set_max_events(5);
  export_request.set_max_bytes(200);
  Put("transparency_request", "export", Byte(3) + export_request.SerializeAsString());
  v1::ExportCheckpointsRequest checkpoints;
  checkpoints.set_start_size(1);
  Put("transparency_request", "checkpoints", Byte(4) + checkpoints.SerializeAsString());
  Put("transparency_request", "latest", Byte(5));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds CORPUS_DIR\n");
    return 2;
  }
  g_root = argv[1];
  Configs();
  ConsentRequests();
  Connector();
  Signed();
  AuditLog();
  Listings();
  return 0;
}
