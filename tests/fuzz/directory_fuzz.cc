// Fuzzes the federation directory loader: text-format tellonce.v1.Directory bytes
// through tellonce::ParseTextProto and consent::Directory::FromProto (what
// Directory::LoadFile does, with jwks_file paths kept inside the scratch folder so the
// fuzzer cannot make it read /dev/stdin). Invariants: a refusal names the source; an
// accepted directory answers its own lookups (every attribute's provider exists and has
// the provider role, every mandate is found again) and checks citizen ids without
// crashing, whatever the pattern.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "consent/directory.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using tellonce::fuzz::FuzzDataPath;
using tellonce::fuzz::ScratchDir;
using tellonce::fuzz::WriteScratch;

// JWKS files an input may name (by base name) in the scratch folder.
void WriteKeySets() {
  static const bool written = [] {
    WriteScratch("idp.json", tellonce::fuzz::IdpSigner().JwksJson());
    absl::StatusOr<tellonce::certs::CitizenAssertionSigner> rsa =
        tellonce::certs::CitizenAssertionSigner::FromPemFile(FuzzDataPath("keys/idp-rs256.key"),
                                                             "fuzz-rsa");
    if (!rsa.ok()) std::abort();
    WriteScratch("rsa.json", rsa->JwksJson());
    WriteScratch("empty.json", "{\"keys\":[]}");
    return true;
  }();
  (void)written;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  WriteKeySets();
  const std::string text(reinterpret_cast<const char*>(data), size);
  tellonce::v1::Directory proto;
  absl::Status parsed = tellonce::ParseTextProto(text, "directory.textproto", &proto);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.message().find("directory.textproto") == 0);
    return 0;
  }
  for (auto& provider : *proto.mutable_citizen_identity_providers()) {
    std::string file = provider.jwks_file();
    const size_t slash = file.rfind('/');
    if (slash != std::string::npos) file = file.substr(slash + 1);
    if (file == "." || file == "..") file.clear();
    provider.set_jwks_file(file);
  }
  absl::StatusOr<std::shared_ptr<const tellonce::consent::Directory>> loaded =
      tellonce::consent::Directory::FromProto(proto, "directory.textproto", ScratchDir());
  if (!loaded.ok()) {
    FUZZ_CHECK(loaded.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(loaded.status().message().find("directory.textproto") == 0);
    return 0;
  }
  const tellonce::consent::Directory& d = **loaded;
  for (const tellonce::v1::Agency& a : proto.agencies()) {
    FUZZ_CHECK(d.FindAgency(a.id()) != nullptr);
  }
  for (const tellonce::v1::AttributeDef& a : proto.attributes()) {
    FUZZ_CHECK(d.FindAttribute(a.name()) != nullptr);
    FUZZ_CHECK(d.HasRole(a.provider(), tellonce::v1::PROVIDER));
  }
  for (const tellonce::v1::Purpose& p : proto.purposes()) {
    FUZZ_CHECK(d.FindPurpose(p.code()) != nullptr);
  }
  for (const tellonce::v1::Mandate& m : proto.mandates()) {
    for (const std::string& attribute : m.attributes()) {
      FUZZ_CHECK(d.FindMandate(m.consumer(), m.purpose(), attribute) != nullptr);
    }
  }
  for (const char* id : {"37605030299", "", "0", "4111111111111111", "x\n"}) {
    absl::Status s = d.CheckCitizenId(id);
    FUZZ_CHECK(s.ok() || s.code() == absl::StatusCode::kInvalidArgument);
  }
  return 0;
}
