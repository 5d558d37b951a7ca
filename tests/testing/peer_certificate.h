#ifndef TELLONCE_TESTS_TESTING_PEER_CERTIFICATE_H_
#define TELLONCE_TESTS_TESTING_PEER_CERTIFICATE_H_

// What certificate a TLS peer presented, for tests of certificate rotation: the serial
// of a PEM certificate, one raw call that reports the serial its connection saw, and a
// poll for a condition that becomes true after a reload.

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/support/byte_buffer.h"

namespace tellonce::testing {

// Upper-case hex serial of a PEM certificate; "" when it does not parse.
inline std::string SerialOfPem(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (cert == nullptr) return "";
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out = hex;
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

// The serial of the certificate the server presented on `context`'s finished call; ""
// when there is none.
inline std::string PeerSerial(const grpc::ClientContext& context) {
  std::vector<grpc::string_ref> pem = context.auth_context()->FindPropertyValues("x509_pem_cert");
  if (pem.size() != 1) return "";
  return SerialOfPem(std::string(pem[0].data(), pem[0].size()));
}

// One unary call of `method` with `payload` as the raw request on `channel`; on
// success, the serial of the certificate the server presented on that connection.
inline absl::StatusOr<std::string> CallForPeerSerial(const std::shared_ptr<grpc::Channel>& channel,
                                                     const std::string& method,
                                                     const std::string& payload = "") {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice slice(payload);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status status = done.get_future().get();
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat(status.error_code(), " ", status.error_message()));
  }
  const std::string serial = PeerSerial(ctx);
  if (serial.empty()) return absl::InternalError("no peer certificate");
  return serial;
}

// Polls `condition` every `poll` until it holds or `timeout` passes; its last value.
inline bool Eventually(const std::function<bool()>& condition,
                       absl::Duration timeout = absl::Seconds(20),
                       absl::Duration poll = absl::Milliseconds(100)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(poll);
  }
  return condition();
}

}  // namespace tellonce::testing

#endif  // TELLONCE_TESTS_TESTING_PEER_CERTIFICATE_H_
