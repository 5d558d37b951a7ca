#include "storage/postgres/schema.h"

#include "absl/strings/str_cat.h"

namespace tellonce::storage::postgres {
namespace {

// Version 1: every store of storage/storage.h as tables a DBA can query. Columns beside
// a `record` / `event` / `checkpoint` bytea repeat what the protobuf holds, for people
// and for indexes; the bytea is what the broker reads back, byte for byte.
constexpr char kVersion1[] = R"sql(
CREATE TABLE consents (
  consent_id   text PRIMARY KEY,
  citizen_id   text NOT NULL,
  consumer     text NOT NULL,
  portal       text NOT NULL,
  request_id   text NOT NULL,
  status       text NOT NULL,
  mode         text NOT NULL,
  purpose      text NOT NULL,
  attributes   text[] NOT NULL,
  valid_from   timestamptz,
  expires_at   timestamptz,
  captured_at  timestamptz,
  expiry_seen  boolean NOT NULL DEFAULT false,
  record       bytea NOT NULL,
  CONSTRAINT consents_request_id_unique UNIQUE (portal, request_id)
);
COMMENT ON TABLE consents IS
  'tellonce consents: one row per consent; record is the StoredConsent protobuf (consent, receipt, request fingerprint)';
COMMENT ON COLUMN consents.status IS
  'stored status: ACTIVE, REVOKED or USED (an ACTIVE consent past expires_at is reported EXPIRED)';
COMMENT ON COLUMN consents.expiry_seen IS
  'true once an ACTIVE consent was found expired; it then leaves consents_active';
CREATE INDEX consents_by_citizen ON consents (citizen_id, consent_id);
CREATE INDEX consents_active ON consents (citizen_id, consumer, consent_id)
  WHERE status = 'ACTIVE' AND NOT expiry_seen;

CREATE TABLE consent_events (
  consent_id   text NOT NULL REFERENCES consents,
  seq          integer NOT NULL,
  kind         text NOT NULL,
  at           timestamptz,
  actor        text NOT NULL,
  reason       text NOT NULL,
  citizen_authenticated_by text NOT NULL,
  citizen_assertion_id     text NOT NULL,
  PRIMARY KEY (consent_id, seq)
);
COMMENT ON TABLE consent_events IS
  'every state change of a consent (GRANTED, REVOKED, USED), in order; also inside consents.record';

CREATE TABLE access_events (
  idx          bigint PRIMARY KEY,
  at           timestamptz NOT NULL,
  citizen_id   text NOT NULL,
  consumer     text NOT NULL,
  provider     text NOT NULL,
  exchange_id  text NOT NULL,
  attributes   text[] NOT NULL,
  purpose      text NOT NULL,
  basis        text NOT NULL,
  outcome      text NOT NULL,
  code         text NOT NULL,
  notified_event_type text NOT NULL,
  event        bytea NOT NULL
);
COMMENT ON TABLE access_events IS
  'the access log: one row per decision about citizen data, numbered 0, 1, ... without gaps; event is the deterministic AccessEvent protobuf the transparency tree hashes';
CREATE INDEX access_events_by_citizen ON access_events (citizen_id, idx);

CREATE SEQUENCE access_batches;
CREATE TABLE access_queue (
  batch        bigint NOT NULL,
  pos          integer NOT NULL,
  at           timestamptz NOT NULL,
  citizen_id   text NOT NULL,
  consumer     text NOT NULL,
  provider     text NOT NULL,
  exchange_id  text NOT NULL,
  attributes   text[] NOT NULL,
  purpose      text NOT NULL,
  basis        text NOT NULL,
  outcome      text NOT NULL,
  code         text NOT NULL,
  notified_event_type text NOT NULL,
  event        bytea NOT NULL,
  PRIMARY KEY (batch, pos)
);
COMMENT ON TABLE access_queue IS
  'access events committed but not yet numbered: the sequencer moves them into access_events in (batch, pos) order';

CREATE TABLE counters (
  name         text PRIMARY KEY,
  value        bigint NOT NULL
);
COMMENT ON TABLE counters IS
  'access_events: events numbered so far; deliveries: the next delivery sequence';
INSERT INTO counters VALUES ('access_events', 0), ('deliveries', 0);

CREATE TABLE sequencer (
  id           integer PRIMARY KEY CHECK (id = 1),
  epoch        bigint NOT NULL,
  owner        text,
  lease_until  timestamptz,
  tree_size    bigint NOT NULL
);
COMMENT ON TABLE sequencer IS
  'the one broker that numbers events, extends the tree and signs checkpoints: owner holds it until lease_until; epoch grows at every change of owner and fences late writers';
INSERT INTO sequencer VALUES (1, 0, NULL, NULL, 0);

CREATE TABLE tree_nodes (
  level        smallint NOT NULL,
  idx          bigint NOT NULL,
  hash         bytea NOT NULL,
  PRIMARY KEY (level, idx)
);
COMMENT ON TABLE tree_nodes IS
  'RFC 6962 hash of every complete subtree: (level, idx) covers leaves [idx * 2^level, (idx + 1) * 2^level)';

CREATE TABLE checkpoints (
  tree_size    bigint PRIMARY KEY,
  root_hash    bytea NOT NULL,
  signed_at    timestamptz,
  issuer       text NOT NULL,
  key_id       text NOT NULL,
  epoch        bigint NOT NULL,
  checkpoint   bytea NOT NULL
);
COMMENT ON TABLE checkpoints IS
  'signed checkpoints (SignedCheckpoint protobuf), at most one per tree size; epoch is the sequencer epoch that stored it';

CREATE TABLE published (
  provider     text NOT NULL,
  event_id     text NOT NULL,
  fingerprint  bytea NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, event_id)
);
COMMENT ON TABLE published IS 'change events accepted, for idempotent publishing';

CREATE TABLE deliveries (
  sequence     bigint PRIMARY KEY,
  subscriber   text NOT NULL,
  citizen_id   text NOT NULL,
  provider     text NOT NULL,
  event_id     text NOT NULL,
  event_type   text NOT NULL,
  state        text NOT NULL,
  attempts     integer NOT NULL,
  created_at   timestamptz,
  next_attempt_at timestamptz,
  last_error   text NOT NULL,
  record       bytea NOT NULL
);
COMMENT ON TABLE deliveries IS
  'the notification outbox: one row per (change, subscriber) until acknowledged; record is the Delivery protobuf';
CREATE INDEX deliveries_pending ON deliveries (subscriber, sequence) WHERE state = 'PENDING';

CREATE TABLE delivery_claims (
  subscriber   text PRIMARY KEY,
  owner        text NOT NULL,
  epoch        bigint NOT NULL,
  lease_until  timestamptz NOT NULL
);
COMMENT ON TABLE delivery_claims IS
  'which broker dispatches each subscriber''s deliveries, until lease_until';
)sql";

constexpr char kSchemaTable[] = R"sql(
CREATE TABLE IF NOT EXISTS tellonce_schema (
  version     integer PRIMARY KEY,
  description text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
)
)sql";

// Serialises migrations of several brokers starting at once ("tell" in ASCII).
constexpr int64_t kMigrationLock = 0x74656c6c;

}  // namespace

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration>* migrations = new std::vector<Migration>{
      {1, "consents, access log, transparency tree, deliveries", kVersion1},
  };
  return *migrations;
}

int LatestSchemaVersion() { return Migrations().back().version; }

absl::StatusOr<int> SchemaVersion(pq::Connection& conn) {
  absl::StatusOr<pq::Result> exists = conn.Exec("SELECT to_regclass('tellonce_schema') IS NOT NULL",
                                                pq::Params(), "reading the schema version");
  if (!exists.ok()) return exists.status();
  if (!exists->Bool(0, 0)) return 0;
  absl::StatusOr<pq::Result> version =
      conn.Exec("SELECT coalesce(max(version), 0) FROM tellonce_schema", pq::Params(),
                "reading the schema version");
  if (!version.ok()) return version.status();
  return static_cast<int>(version->Int(0, 0));
}

absl::Status Migrate(pq::Connection& conn, bool apply, std::vector<int>* applied) {
  const int latest = LatestSchemaVersion();
  auto check = [&](int version) -> absl::Status {
    if (version > latest) {
      return absl::FailedPreconditionError(
          absl::StrCat("postgres: the database schema is at version ", version,
                       ", newer than this broker knows (", latest, "): upgrade the broker"));
    }
    if (version < latest && !apply) {
      return absl::FailedPreconditionError(
          absl::StrCat("postgres: the database schema is at version ", version,
                       ", this broker needs ", latest, ": run tellonce-broker --migrate"));
    }
    return absl::OkStatus();
  };
  absl::StatusOr<int> version = SchemaVersion(conn);
  if (!version.ok()) return version.status();
  if (absl::Status bad = check(*version); !bad.ok() || *version == latest) return bad;

  // Apply, one transaction per run: under the lock, read the version again (another
  // broker may have migrated meanwhile), then apply what is missing.
  auto rollback = [&conn](absl::Status status) {
    if (conn.ok()) (void)conn.Exec("ROLLBACK", "rolling back a migration");
    return status;
  };
  if (auto begun = conn.Exec("BEGIN", "starting a migration"); !begun.ok()) return begun.status();
  pq::Params lock;
  lock.Int8(kMigrationLock);
  if (auto locked = conn.Exec("SELECT pg_advisory_xact_lock($1)", lock, "locking the schema");
      !locked.ok()) {
    return rollback(locked.status());
  }
  if (auto created = conn.Exec(kSchemaTable, "creating tellonce_schema"); !created.ok()) {
    return rollback(created.status());
  }
  version = SchemaVersion(conn);
  if (!version.ok()) return rollback(version.status());
  if (absl::Status bad = check(*version); !bad.ok()) return rollback(bad);
  for (const Migration& m : Migrations()) {
    if (m.version <= *version) continue;
    const std::string what = absl::StrCat("applying schema version ", m.version);
    if (auto done = conn.Exec(m.sql, what); !done.ok()) return rollback(done.status());
    pq::Params row;
    row.Int4(m.version).Text(m.description);
    if (auto recorded = conn.Exec(
            "INSERT INTO tellonce_schema (version, description) VALUES ($1, $2)", row, what);
        !recorded.ok()) {
      return rollback(recorded.status());
    }
    if (applied != nullptr) applied->push_back(m.version);
  }
  if (auto committed = conn.Exec("COMMIT", "committing the schema"); !committed.ok()) {
    return committed.status();
  }
  return absl::OkStatus();
}

}  // namespace tellonce::storage::postgres
