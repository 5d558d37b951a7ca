#include "tests/bench/synthetic.h"

#include <stdlib.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_format.h"
#include "consent/directory.h"
#include "rocksdb/db.h"
#include "storage/rocksdb/testing.h"
#include "tests/bench/in_flight.h"

namespace tellonce::bench {
namespace {

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  ts->set_seconds(absl::ToUnixSeconds(t));
  ts->set_nanos(0);
}

}  // namespace

std::string CitizenId(int64_t n) {
  const int serial = static_cast<int>(n % 1000);
  const int day = static_cast<int>((n / 1000) % 28 + 1);
  const int month = static_cast<int>((n / 28000) % 12 + 1);
  const int year = static_cast<int>(50 + (n / 336000) % 40);
  const std::string prefix = absl::StrFormat("3%02d%02d%02d%03d", year, month, day, serial);
  for (char check = '0'; check <= '9'; ++check) {
    if (consent::EstonianIsikukoodValid(prefix + check)) return prefix + check;
  }
  std::abort();  // the mod-11 scheme always has a check digit
}

tellonce::v1::StoredConsent MakeConsentRecord(const std::string& citizen_id,
                                              const ConsentShape& shape,
                                              const std::string& request_id, absl::Time now) {
  tellonce::v1::StoredConsent record;
  tellonce::v1::Consent& c = *record.mutable_consent();
  c.set_consent_id(consent::NewConsentId(now));
  c.set_citizen_id(citizen_id);
  c.set_consumer(shape.consumer);
  for (const std::string& a : shape.attributes) c.add_attributes(a);
  c.set_purpose(shape.purpose);
  SetTime(now - absl::Hours(24), c.mutable_valid_from());
  SetTime(now + absl::Hours(24 * 365), c.mutable_expires_at());
  c.set_mode(tellonce::v1::UNTIL_EXPIRY);
  c.set_portal(shape.portal);
  SetTime(now, c.mutable_captured_at());
  c.set_status(tellonce::v1::ACTIVE);
  tellonce::v1::ConsentEvent* e = c.add_events();
  e->set_kind(tellonce::v1::ConsentEvent::GRANTED);
  SetTime(now, e->mutable_at());
  e->set_actor(shape.portal);
  c.set_request_id(request_id);
  record.mutable_receipt()->set_body(std::string(330, 'b'));
  record.mutable_receipt()->set_signature(std::string(71, 's'));
  record.mutable_receipt()->set_signature_algorithm("ecdsa-p256-sha256");
  record.set_request_fingerprint(std::string(32, 'f'));
  return record;
}

absl::Status BulkGrant(consent::ConsentStore& store, storage::Storage& storage, int64_t count,
                       const std::function<tellonce::v1::StoredConsent(int64_t)>& make_record) {
  InFlight in_flight(/*limit=*/8192);
  for (int64_t k = 0; k < count && !in_flight.failed(); ++k) {
    in_flight.Add();
    store.Grant(make_record(k), [&](absl::StatusOr<consent::ConsentStore::GrantOutcome> r) {
      in_flight.Done(r.status());
    });
  }
  if (absl::Status s = in_flight.WaitForNone(); !s.ok()) return s;
  storage::rocks::Database* db = storage::rocks::DatabaseOf(storage);
  if (db == nullptr) return absl::OkStatus();
  rocksdb::FlushOptions flush;
  flush.wait = true;
  for (storage::rocks::Family f :
       {storage::rocks::Family::kConsents, storage::rocks::Family::kIndexes}) {
    rocksdb::Status s = db->db()->Flush(flush, db->family(f));
    if (!s.ok()) return storage::rocks::FromRocks(s);
    s = db->db()->CompactRange(rocksdb::CompactRangeOptions(), db->family(f), nullptr, nullptr);
    if (!s.ok()) return storage::rocks::FromRocks(s);
  }
  return absl::OkStatus();
}

std::string MakeTempDir(const std::string& name) {
  std::string pattern = (std::filesystem::temp_directory_path() / (name + ".XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  return pattern;
}

}  // namespace tellonce::bench
