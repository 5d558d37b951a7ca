#ifndef TELLONCE_TESTS_BENCH_SYNTHETIC_H_
#define TELLONCE_TESTS_BENCH_SYNTHETIC_H_

// Synthetic data for the benchmarks: citizens with valid personal codes, consent
// records shaped like the registry's, and a bulk loader that writes them through the
// real consent store. Shared by consent_bench, preload_consents and rpc_load, so a
// citizen number means the same person in each of them.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "consent/consent_store.h"
#include "storage/storage.h"
#include "tellonce/v1/storage.pb.h"

namespace tellonce::bench {

// The Estonian personal code of synthetic citizen `n` (0 <= n < 13,440,000): a man
// born 1950..1989, the birth date and serial spread from n, and the check digit the
// directory's ESTONIAN_ISIKUKOOD rule accepts. Same scheme as the integration
// harness. Distinct n give distinct codes.
std::string CitizenId(int64_t n);

// What a synthetic consent says.
struct ConsentShape {
  std::string consumer = "tax";
  std::vector<std::string> attributes = {"bank.interest_paid"};
  std::string purpose = "TAX_DEDUCTION_CHECK";
  std::string portal = "portal";
};

// An ACTIVE, UNTIL_EXPIRY consent of `citizen_id` granted at `now` (valid from a day
// before, for a year), with one GRANTED event and a receipt of realistic size (the
// receipt is filler: nothing on the exchange path reads it). The consent id is new.
tellonce::v1::StoredConsent MakeConsentRecord(const std::string& citizen_id,
                                              const ConsentShape& shape,
                                              const std::string& request_id, absl::Time now);

// Grants `count` records, make_record(0) .. make_record(count - 1), through `store`
// with up to 8192 in flight, then flushes and compacts the consent and index column
// families of `storage` (a RocksDB one) so that lookups read sorted files with their bloom filters,
// as a long-running broker would. Meant for a store whose CommitQueue has sync=false. Returns the
// first failed grant's status (nothing after it is guaranteed stored).
absl::Status BulkGrant(consent::ConsentStore& store, storage::Storage& storage, int64_t count,
                       const std::function<tellonce::v1::StoredConsent(int64_t)>& make_record);

// A fresh directory under $TMPDIR (or /tmp) named `name`.XXXXXX; exits on failure.
std::string MakeTempDir(const std::string& name);

}  // namespace tellonce::bench

#endif  // TELLONCE_TESTS_BENCH_SYNTHETIC_H_
