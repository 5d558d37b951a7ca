#ifndef TELLONCE_STORAGE_POSTGRES_SCHEMA_H_
#define TELLONCE_STORAGE_POSTGRES_SCHEMA_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/postgres/pq.h"

namespace tellonce::storage::postgres {

// One step of the schema, applied once, in order of version, inside one transaction
// together with its row in `tellonce_schema`.
struct Migration {
  int version;
  const char* description;
  const char* sql;
};

// Every migration this build knows, by version (1, 2, ...).
const std::vector<Migration>& Migrations();
// The version this build's code reads and writes (the last migration's).
int LatestSchemaVersion();

// The version the database is at: 0 when it has no tellonce schema yet.
absl::StatusOr<int> SchemaVersion(pq::Connection& conn);

// Brings the database to LatestSchemaVersion() when `apply` (several brokers starting
// at once take turns: an advisory lock serialises them, and each sees what the first
// did), or only checks it when not. Errors: FAILED_PRECONDITION when the database's
// schema is newer than this build knows ("upgrade the broker"), or older and `apply` is
// false ("run tellonce-broker --migrate"); UNAVAILABLE when the database cannot be
// reached; a failed migration's error (then nothing of it is applied).
absl::Status Migrate(pq::Connection& conn, bool apply, std::vector<int>* applied = nullptr);

}  // namespace tellonce::storage::postgres

#endif  // TELLONCE_STORAGE_POSTGRES_SCHEMA_H_
