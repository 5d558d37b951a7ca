#ifndef TELLONCE_TESTS_TESTING_SAMPLE_DIRECTORY_H_
#define TELLONCE_TESTS_TESTING_SAMPLE_DIRECTORY_H_

// The sample federation directory (deploy/local/directory.textproto) for unit tests
// that do not care about citizen identity providers: its jwks_file (pki/idp/jwks.json,
// made by make-dev-pki beside a deployed copy) is replaced by a fresh key's JWKS
// written into `scratch_dir`.

#include <fstream>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "certs/citizen_assertion.h"
#include "consent/directory.h"
#include "proto/textproto.h"

namespace tellonce::testing {

inline absl::StatusOr<std::shared_ptr<const consent::Directory>> LoadSampleDirectory(
    const std::string& sample_path, const std::string& scratch_dir) {
  tellonce::v1::Directory proto;
  if (absl::Status s = ParseTextProtoFile(sample_path, &proto); !s.ok()) return s;
  absl::StatusOr<certs::CitizenAssertionSigner> signer =
      certs::CitizenAssertionSigner::GenerateEs256("dev-idp");
  if (!signer.ok()) return signer.status();
  const std::string jwks = scratch_dir + "/sample-jwks.json";
  std::ofstream(jwks) << signer->JwksJson();
  for (auto& provider : *proto.mutable_citizen_identity_providers()) {
    provider.set_jwks_file(jwks);
  }
  return consent::Directory::FromProto(std::move(proto), sample_path);
}

}  // namespace tellonce::testing

#endif  // TELLONCE_TESTS_TESTING_SAMPLE_DIRECTORY_H_
