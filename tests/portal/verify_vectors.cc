// Prints JSON test vectors for the browser's checks (portal/web/js/verify.js), made with
// the C++ side's own code (certs/merkle.h, certs/signing.h, the generated protos), so the
// JavaScript test (verify_test.mjs) checks the browser against what the broker does.

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "certs/merkle.h"
#include "certs/signing.h"
#include "openssl/evp.h"
#include "openssl/pem.h"
#include "tellonce/v1/consent.pb.h"
#include "tellonce/v1/transparency.pb.h"

namespace {

using tellonce::certs::Hash;

std::string B64(std::string_view bytes) {
  return absl::Base64Escape(absl::string_view(bytes.data(), bytes.size()));
}
std::string B64(const Hash& h) {
  return B64(std::string_view(reinterpret_cast<const char*>(h.data()), h.size()));
}
std::string Quoted(const std::string& s) { return absl::StrCat("\"", s, "\""); }

std::string NewKeyPem() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(key);
  return pem;
}

// A tree of the given leaves: its root and every leaf's inclusion proof.
struct Tree {
  std::map<std::pair<int, uint64_t>, Hash> nodes;
  uint64_t size = 0;
  Hash root;
};

Tree Build(const std::vector<std::string>& leaves) {
  Tree t;
  tellonce::certs::TreeBuilder builder;
  for (const std::string& leaf : leaves) {
    for (const auto& node : builder.Append(tellonce::certs::LeafHash(leaf))) {
      t.nodes[{node.level, node.index}] = node.hash;
    }
  }
  t.size = builder.size();
  t.root = builder.Root();
  return t;
}

std::vector<Hash> Proof(const Tree& t, uint64_t index) {
  return *tellonce::certs::InclusionProof(index, t.size,
                                          [&](int level, uint64_t i) -> absl::StatusOr<Hash> {
                                            return t.nodes.at({level, i});
                                          });
}

std::string ProofJson(const std::vector<Hash>& proof) {
  std::vector<std::string> parts;
  for (const Hash& h : proof) parts.push_back(Quoted(B64(h)));
  return absl::StrCat("[", absl::StrJoin(parts, ","), "]");
}

tellonce::v1::AccessEvent Event(int i) {
  tellonce::v1::AccessEvent e;
  e.mutable_at()->set_seconds(1764547200 + i);
  e.mutable_at()->set_nanos(123456789);
  e.set_exchange_id(absl::StrCat("EX", i));
  e.set_consumer(i % 2 ? "tax" : "benefits");
  e.set_provider("bank");
  e.set_citizen_id("37605030299");
  e.add_attributes("bank.interest_paid");
  if (i % 3 == 0) e.add_attributes("person.name");
  e.set_purpose("TAX_DEDUCTION_CHECK");
  if (i % 2) {
    e.mutable_basis()->set_consent_id("01M8Q5J6WW8MJD6HNWTPM9A8XT");
  } else {
    e.mutable_basis()->set_mandate_id("income-tax-act-identity");
    e.mutable_basis()->set_legal_reference("Income Tax Act s. 12(3) (example) – ü");
  }
  e.set_outcome(i % 4 == 3 ? tellonce::v1::AccessEvent::DENIED
                           : tellonce::v1::AccessEvent::ALLOWED);
  e.set_code(i % 4 == 3 ? tellonce::v1::RESULT_CONSENT_REVOKED : tellonce::v1::RESULT_OK);
  return e;
}

}  // namespace

int main() {
  std::string out = "{\"trees\":[";
  // Trees of 1..33 leaves: every proof shape up to five levels.
  for (int n = 1; n <= 33; ++n) {
    std::vector<std::string> leaves;
    for (int i = 0; i < n; ++i) leaves.push_back(absl::StrCat("leaf ", i, " of ", n));
    Tree t = Build(leaves);
    std::vector<std::string> leaf_json, proofs;
    for (int i = 0; i < n; ++i) {
      leaf_json.push_back(Quoted(B64(leaves[i])));
      proofs.push_back(ProofJson(Proof(t, i)));
    }
    absl::StrAppend(&out, n > 1 ? "," : "", "{\"size\":", n, ",\"root\":", Quoted(B64(t.root)),
                    ",\"leaves\":[", absl::StrJoin(leaf_json, ","), "],\"proofs\":[",
                    absl::StrJoin(proofs, ","), "]}");
  }
  absl::StrAppend(&out, "]");

  // A signed checkpoint over a log of access events, and one entry of it.
  absl::StatusOr<tellonce::certs::SigningKey> key =
      tellonce::certs::SigningKey::FromPem(NewKeyPem(), "test-key");
  if (!key.ok()) return 1;
  std::vector<std::string> events;
  for (int i = 0; i < 7; ++i) {
    std::string bytes;
    Event(i).SerializeToString(&bytes);
    events.push_back(bytes);
  }
  Tree log = Build(events);
  tellonce::v1::Checkpoint checkpoint;
  checkpoint.set_issuer("spiffe://tellonce.local/broker");
  checkpoint.set_tree_size(log.size);
  checkpoint.set_root_hash(std::string(reinterpret_cast<const char*>(log.root.data()), 32));
  checkpoint.mutable_signed_at()->set_seconds(1764547300);
  std::string body;
  checkpoint.SerializeToString(&body);
  std::string signature = *key->Sign(tellonce::certs::SignedKind::kCheckpoint, body);
  // A signature whose r or s is shorter than 32 bytes (DER drops leading zeros).
  std::string short_signature;
  for (int i = 0; i < 5000 && short_signature.empty(); ++i) {
    std::string s = *key->Sign(tellonce::certs::SignedKind::kCheckpoint, body);
    if (s.size() < 70) short_signature = s;
  }
  const int entry = 5;
  absl::StrAppend(&out, ",\"key\":{\"key_id\":\"test-key\",\"pem\":",
                  Quoted(absl::StrReplaceAll(key->PublicKeyPem(), {{"\n", "\\n"}})), "}");
  absl::StrAppend(&out, ",\"checkpoint\":{\"body\":", Quoted(B64(body)),
                  ",\"signature\":", Quoted(B64(signature)),
                  ",\"short_signature\":", Quoted(B64(short_signature)),
                  ",\"signature_algorithm\":\"ecdsa-p256-sha256\",\"key_id\":\"test-key\"",
                  ",\"tree_size\":", log.size, ",\"root\":", Quoted(B64(log.root)), "}");
  absl::StrAppend(
      &out, ",\"entry\":{\"index\":\"", entry,
      "\",\"event\":{\"at\":", Quoted("2025-12-01T00:00:05.123456789Z"),
      ",\"exchange_id\":\"EX5\","
      "\"consumer\":\"tax\",\"provider\":\"bank\",\"citizen_id\":\"37605030299\","
      "\"attributes\":[\"bank.interest_paid\"],\"purpose\":\"TAX_DEDUCTION_CHECK\","
      "\"basis\":{\"consent_id\":\"01M8Q5J6WW8MJD6HNWTPM9A8XT\",\"legal_reference\":\"\"},"
      "\"outcome\":\"ALLOWED\",\"code\":\"RESULT_OK\",\"notified_event_type\":\"\"}}");
  absl::StrAppend(&out, ",\"proof\":{\"index\":\"", entry, "\",\"tree_size\":\"", log.size,
                  "\",\"event_bytes\":", Quoted(B64(events[entry])),
                  ",\"path\":", ProofJson(Proof(log, entry)), "}");

  // A receipt.
  tellonce::v1::ReceiptBody receipt;
  receipt.set_version("tellonce-receipt/1");
  receipt.set_record_id("01M8Q5J6WW8MJD6HNWTPM9A8XT");
  receipt.set_principal_id("37605030299");
  receipt.set_controller("tax");
  auto* purpose = receipt.add_purposes();
  purpose->set_code("TAX_DEDUCTION_CHECK");
  purpose->set_description("Check eligibility");
  receipt.add_attributes("bank.interest_paid");
  receipt.add_attributes("person.name");
  receipt.mutable_expires_at()->set_seconds(1767225600);  // 2026-01-01T00:00:00Z
  receipt.set_mode(tellonce::v1::UNTIL_EXPIRY);
  std::string receipt_body;
  receipt.SerializeToString(&receipt_body);
  absl::StrAppend(
      &out, ",\"receipt\":{\"body\":", Quoted(B64(receipt_body)), ",\"signature\":",
      Quoted(B64(*key->Sign(tellonce::certs::SignedKind::kConsentReceipt, receipt_body))),
      ",\"key_id\":\"test-key\"}");
  absl::StrAppend(&out,
                  ",\"consent\":{\"consent_id\":\"01M8Q5J6WW8MJD6HNWTPM9A8XT\","
                  "\"citizen_id\":\"37605030299\",\"consumer\":\"tax\","
                  "\"attributes\":[\"bank.interest_paid\",\"person.name\"],"
                  "\"purpose\":\"TAX_DEDUCTION_CHECK\",\"expires_at\":"
                  "\"2026-01-01T00:00:00Z\",\"mode\":\"UNTIL_EXPIRY\"}}\n");
  std::fputs(out.c_str(), stdout);
  return 0;
}
