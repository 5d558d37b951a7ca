#ifndef TELLONCE_TESTS_TESTING_TEST_KEYS_H_
#define TELLONCE_TESTS_TESTING_TEST_KEYS_H_

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <string>

namespace tellonce::testing {

// A fresh P-256 private key as PEM; empty if OpenSSL fails.
inline std::string NewP256KeyPem() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) return "";
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(size));
  BIO_free(bio);
  EVP_PKEY_free(key);
  return pem;
}

}  // namespace tellonce::testing

#endif  // TELLONCE_TESTS_TESTING_TEST_KEYS_H_
