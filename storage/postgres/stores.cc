// The read stores and the tree, over the storage's connection pools.

#include <algorithm>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proto/time.h"
#include "storage/postgres/internal.h"

namespace tellonce::storage::postgres::internal {

const pq::Statement kActiveConsents{"r_active", R"sql(
SELECT record FROM consents
WHERE citizen_id = $1 AND consumer = $2 AND status = 'ACTIVE' AND NOT expiry_seen
ORDER BY consent_id LIMIT $3
)sql"};

namespace {

// Rows fetched per round trip by the scans.
constexpr int kChunk = 256;

int64_t ClampToInt64(uint64_t value) {
  return value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
             ? std::numeric_limits<int64_t>::max()
             : static_cast<int64_t>(value);
}

absl::Status Exec(pq::Connection& conn, const char* sql) { return conn.Exec(sql, sql).status(); }

// --- Consents ----------------------------------------------------------------------------

constexpr pq::Statement kGetConsent{"r_get_consent",
                                    "SELECT record FROM consents WHERE consent_id = $1"};
constexpr pq::Statement kCitizenConsents{"r_citizen_consents", R"sql(
SELECT consent_id, record FROM consents
WHERE citizen_id = $1 AND consent_id > $2 ORDER BY consent_id LIMIT $3
)sql"};

class PgConsentRows final : public ConsentRows {
 public:
  explicit PgConsentRows(PgStorage* s) : s_(s) {}

  absl::StatusOr<StoredConsent> Get(const std::string& consent_id) override {
    StoredConsent record;
    bool found = false;
    absl::Status status = s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
      pq::Params params;
      params.Text(consent_id);
      absl::StatusOr<pq::Result> r = conn.Run(kGetConsent, params, "reading a consent");
      if (!r.ok()) return r.status();
      found = r->rows() == 1;
      if (!found) return absl::OkStatus();
      return ParseStored(r->Bytes(0, 0), &record, absl::StrCat("consent record ", consent_id));
    });
    if (!status.ok()) return status;
    if (!found) return absl::NotFoundError("consent_id: no such consent");
    return record;
  }

  absl::Status ScanCitizen(const std::string& citizen_id, const std::string& after_id,
                           const std::function<bool(StoredConsent&)>& visit) override {
    // One statement when the citizen's consents fit one chunk (nearly always);
    // otherwise every chunk in one REPEATABLE READ transaction, so the scan sees one
    // point in time. The connection is held while `visit` runs.
    return s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
      bool in_snapshot = false;
      std::string after = after_id;
      for (;;) {
        pq::Params params;
        params.Text(citizen_id).Text(after).Int4(kChunk);
        absl::StatusOr<pq::Result> r =
            conn.Run(kCitizenConsents, params, "listing a citizen's consents");
        if (!r.ok()) return r.status();
        if (!in_snapshot && r->rows() == kChunk && after == after_id) {
          if (absl::Status s = Exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
              !s.ok()) {
            return s;
          }
          in_snapshot = true;
          continue;  // read the first chunk again, inside the snapshot
        }
        for (int row = 0; row < r->rows(); ++row) {
          StoredConsent record;
          if (absl::Status s = ParseStored(r->Bytes(row, 1), &record, "a consent record");
              !s.ok()) {
            return s;
          }
          if (!visit(record)) return in_snapshot ? Exec(conn, "COMMIT") : absl::OkStatus();
        }
        if (r->rows() < kChunk) break;
        after = r->String(r->rows() - 1, 0);
      }
      return in_snapshot ? Exec(conn, "COMMIT") : absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<Consent>> Active(const std::string& citizen_id,
                                              const std::string& consumer, int limit) override {
    std::vector<Consent> consents;
    absl::Status status = s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
      consents.clear();
      pq::Params params;
      params.Text(citizen_id).Text(consumer).Int4(limit);
      absl::StatusOr<pq::Result> r = conn.Run(kActiveConsents, params, "reading active consents");
      if (!r.ok()) return r.status();
      for (int row = 0; row < r->rows(); ++row) {
        StoredConsent record;
        if (absl::Status s = ParseStored(r->Bytes(row, 0), &record, "a consent record"); !s.ok()) {
          return s;
        }
        consents.push_back(std::move(*record.mutable_consent()));
      }
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return consents;
  }

 private:
  PgStorage* s_;
};

// --- Access events -----------------------------------------------------------------------

constexpr pq::Statement kLogSize{"r_log_size",
                                 "SELECT value FROM counters WHERE name = 'access_events'"};
constexpr pq::Statement kEventBytes{"r_event", "SELECT event FROM access_events WHERE idx = $1"};
constexpr pq::Statement kEventRange{"r_event_range", R"sql(
SELECT idx, event FROM access_events WHERE idx >= $1 AND idx < $2 ORDER BY idx LIMIT $3
)sql"};
constexpr pq::Statement kCitizenEvents{"r_citizen_events", R"sql(
SELECT idx, event FROM access_events WHERE citizen_id = $1 AND idx > $2 ORDER BY idx LIMIT $3
)sql"};

absl::StatusOr<uint64_t> ReadCounter(pq::Connection& conn, const pq::Statement& statement,
                                     absl::string_view what) {
  absl::StatusOr<pq::Result> r = conn.Run(statement, pq::Params(), what);
  if (!r.ok()) return r.status();
  if (r->rows() != 1) return absl::DataLossError(absl::StrCat(what, ": its row is missing"));
  return static_cast<uint64_t>(r->Int(0, 0));
}

class PgAccessEventLog final : public AccessEventLog {
 public:
  explicit PgAccessEventLog(PgStorage* s) : s_(s) {}

  absl::StatusOr<uint64_t> Size() override {
    uint64_t size = 0;
    absl::Status status = s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
      absl::StatusOr<uint64_t> n = ReadCounter(conn, kLogSize, "reading the access log size");
      if (!n.ok()) return n.status();
      size = *n;
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return size;
  }

  absl::StatusOr<std::string> ReadBytes(uint64_t index) override {
    std::optional<std::string> bytes;
    absl::Status status = s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
      pq::Params params;
      params.Int8(ClampToInt64(index));
      absl::StatusOr<pq::Result> r = conn.Run(kEventBytes, params, "reading an access event");
      if (!r.ok()) return r.status();
      if (r->rows() == 1) bytes = r->String(0, 0);
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    if (!bytes.has_value()) return absl::NotFoundError(absl::StrCat("no access event ", index));
    return *std::move(bytes);
  }

  absl::Status Scan(uint64_t start, uint64_t end,
                    const std::function<bool(uint64_t, std::string_view)>& visit) override {
    uint64_t next = start;
    while (next < end) {
      pq::Result chunk;
      absl::Status status = s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
        pq::Params params;
        params.Int8(ClampToInt64(next)).Int8(ClampToInt64(end)).Int4(kChunk);
        absl::StatusOr<pq::Result> r = conn.Run(kEventRange, params, "reading access events");
        if (!r.ok()) return r.status();
        chunk = *std::move(r);
        return absl::OkStatus();
      });
      if (!status.ok()) return status;
      // Visited without a connection held: `visit` may call the storage itself.
      for (int row = 0; row < chunk.rows(); ++row) {
        const uint64_t index = static_cast<uint64_t>(chunk.Int(row, 0));
        if (index != next) {
          return absl::DataLossError(absl::StrCat("access event ", next, " is missing"));
        }
        ++next;
        if (!visit(index, chunk.Bytes(row, 1))) return absl::OkStatus();
      }
      if (chunk.rows() < kChunk && next < end) {
        return absl::DataLossError(absl::StrCat("access event ", next, " is missing"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ScanCitizen(const std::string& citizen_id, std::optional<uint64_t> after,
                           const std::function<bool(uint64_t, std::string_view)>& visit) override {
    int64_t from = after.has_value() ? ClampToInt64(*after) : -1;
    for (;;) {
      pq::Result chunk;
      absl::Status status = s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
        pq::Params params;
        params.Text(citizen_id).Int8(from).Int4(kChunk);
        absl::StatusOr<pq::Result> r =
            conn.Run(kCitizenEvents, params, "reading a citizen's access events");
        if (!r.ok()) return r.status();
        chunk = *std::move(r);
        return absl::OkStatus();
      });
      if (!status.ok()) return status;
      for (int row = 0; row < chunk.rows(); ++row) {
        from = chunk.Int(row, 0);
        if (!visit(static_cast<uint64_t>(from), chunk.Bytes(row, 1))) return absl::OkStatus();
      }
      if (chunk.rows() < kChunk) return absl::OkStatus();
    }
  }

 private:
  PgStorage* s_;
};

// --- The tree ----------------------------------------------------------------------------

constexpr pq::Statement kTreeSize{"r_tree_size", "SELECT tree_size FROM sequencer WHERE id = 1"};
constexpr pq::Statement kReadNode{"r_node",
                                  "SELECT hash FROM tree_nodes WHERE level = $1 AND idx = $2"};
constexpr pq::Statement kSequencerRow{"r_sequencer_row",
                                      "SELECT epoch, tree_size FROM sequencer WHERE id = 1"};
constexpr pq::Statement kSequencerShare{
    "r_sequencer_share", "SELECT epoch, tree_size FROM sequencer WHERE id = 1 FOR SHARE"};
constexpr pq::Statement kLogSizeForUpdate{
    "r_log_size_for_update", "SELECT value FROM counters WHERE name = 'access_events' FOR UPDATE"};
constexpr pq::Statement kMoveQueued{"r_move_queued", R"sql(
WITH moved AS (
  DELETE FROM access_queue
  WHERE (batch, pos) IN (SELECT batch, pos FROM access_queue ORDER BY batch, pos LIMIT $2)
  RETURNING *)
INSERT INTO access_events (idx, at, citizen_id, consumer, provider, exchange_id, attributes,
                           purpose, basis, outcome, code, notified_event_type, event)
SELECT $1 + row_number() OVER (ORDER BY batch, pos) - 1, at, citizen_id, consumer, provider,
       exchange_id, attributes, purpose, basis, outcome, code, notified_event_type, event
FROM moved
)sql"};
constexpr pq::Statement kAddToLogSize{
    "r_add_log_size", "UPDATE counters SET value = value + $1 WHERE name = 'access_events'"};
constexpr pq::Statement kExtendTree{"r_extend_tree", R"sql(
UPDATE sequencer SET tree_size = $3 WHERE id = 1 AND epoch = $1 AND tree_size = $2
)sql"};
constexpr pq::Statement kInsertNodes{"r_insert_nodes", R"sql(
INSERT INTO tree_nodes (level, idx, hash) SELECT * FROM unnest($1::int2[], $2::int8[], $3::bytea[])
)sql"};
constexpr pq::Statement kInsertCheckpoint{"r_insert_checkpoint", R"sql(
INSERT INTO checkpoints (tree_size, root_hash, signed_at, issuer, key_id, epoch, checkpoint)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tree_size) DO NOTHING
)sql"};
constexpr pq::Statement kCheckpointAt{"r_checkpoint_at",
                                      "SELECT checkpoint FROM checkpoints WHERE tree_size = $1"};
constexpr pq::Statement kCheckpointsFrom{"r_checkpoints_from", R"sql(
SELECT tree_size, checkpoint FROM checkpoints WHERE tree_size >= $1 ORDER BY tree_size LIMIT $2
)sql"};

// Events numbered per sequencing transaction, and transactions per Sequence call.
constexpr int kSequenceChunk = 4096;
constexpr int kSequencePasses = 16;

absl::Status NotSequencer() {
  return absl::AbortedError(
      "postgres: this replica is not the sequencer (another replica holds the role)");
}

class PgTreeStore final : public TreeStore {
 public:
  explicit PgTreeStore(PgStorage* s) : s_(s) {}

  absl::StatusOr<bool> AcquireSequencer() override { return s_->AcquireSequencer(); }

  absl::StatusOr<uint64_t> Sequence() override {
    if (s_->options().numbering == Numbering::kAtCommit) return s_->access_events().Size();
    absl::StatusOr<int64_t> epoch = s_->SequencerEpoch(true);
    if (!epoch.ok()) return epoch.status();
    if (*epoch == 0) return NotSequencer();
    uint64_t size = 0;
    // At most kSequencePasses transactions per call, so the caller renews its lease in
    // between however long the queue has grown; the next call goes on.
    for (int pass = 0;; ++pass) {
      int64_t moved = 0;
      absl::Status status = s_->reads().With(false, [&](pq::Connection& conn) -> absl::Status {
        if (absl::Status s = Exec(conn, "BEGIN"); !s.ok()) return s;
        // The sequencer row, shared: no takeover can commit while this runs, and a
        // takeover that committed before makes the epoch differ.
        absl::StatusOr<pq::Result> row =
            conn.Run(kSequencerShare, pq::Params(), "checking the sequencer epoch");
        if (!row.ok()) return row.status();
        if (row->rows() != 1 || row->Int(0, 0) != *epoch) {
          s_->LostSequencer(*epoch);
          return NotSequencer();
        }
        absl::StatusOr<uint64_t> n =
            ReadCounter(conn, kLogSizeForUpdate, "locking the access log size");
        if (!n.ok()) return n.status();
        size = *n;
        pq::Params params;
        params.Int8(ClampToInt64(size)).Int4(kSequenceChunk);
        absl::StatusOr<pq::Result> r = conn.Run(kMoveQueued, params, "numbering access events");
        if (!r.ok()) return r.status();
        moved = r->affected();
        if (moved > 0) {
          pq::Params add;
          add.Int8(moved);
          if (auto u = conn.Run(kAddToLogSize, add, "counting numbered access events"); !u.ok()) {
            return u.status();
          }
        }
        return Exec(conn, "COMMIT");
      });
      if (!status.ok()) return status;
      size += static_cast<uint64_t>(moved);
      if (moved < kSequenceChunk || pass + 1 >= kSequencePasses) return size;
    }
  }

  absl::StatusOr<uint64_t> TreeSize() override {
    uint64_t size = 0;
    absl::Status status = s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
      absl::StatusOr<uint64_t> n = ReadCounter(conn, kTreeSize, "reading the tree size");
      if (!n.ok()) return n.status();
      size = *n;
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return size;
  }

  absl::StatusOr<certs::Hash> ReadNode(int level, uint64_t index) override {
    std::optional<std::string> bytes;
    absl::Status status = s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
      pq::Params params;
      params.Int2(static_cast<int16_t>(level)).Int8(ClampToInt64(index));
      absl::StatusOr<pq::Result> r = conn.Run(kReadNode, params, "reading a tree node");
      if (!r.ok()) return r.status();
      if (r->rows() == 1) bytes = r->String(0, 0);
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    if (!bytes.has_value()) {
      return absl::DataLossError(absl::StrCat("tree node ", level, "/", index, " is missing"));
    }
    absl::StatusOr<certs::Hash> hash = certs::HashFromBytes(*bytes);
    if (!hash.ok()) {
      return absl::DataLossError(absl::StrCat("tree node ", level, "/", index, " is corrupt"));
    }
    return hash;
  }

  absl::Status ExtendTree(uint64_t old_size, uint64_t new_size,
                          const std::vector<certs::TreeBuilder::Node>& nodes) override {
    if (new_size < old_size) {
      return absl::InvalidArgumentError("new_size: smaller than old_size");
    }
    absl::StatusOr<int64_t> epoch = s_->SequencerEpoch(true);
    if (!epoch.ok()) return epoch.status();
    if (*epoch == 0) return NotSequencer();
    std::vector<int16_t> levels;
    std::vector<int64_t> indexes;
    std::vector<std::string> hashes;
    for (const certs::TreeBuilder::Node& n : nodes) {
      levels.push_back(static_cast<int16_t>(n.level));
      indexes.push_back(ClampToInt64(n.index));
      hashes.emplace_back(reinterpret_cast<const char*>(n.hash.data()), n.hash.size());
    }
    // Not synced (the tree is recomputed from the events); a later checkpoint's synced
    // commit makes it durable.
    return s_->unsynced().With(false, [&](pq::Connection& conn) -> absl::Status {
      if (absl::Status s = Exec(conn, "BEGIN"); !s.ok()) return s;
      pq::Params params;
      params.Int8(*epoch).Int8(ClampToInt64(old_size)).Int8(ClampToInt64(new_size));
      absl::StatusOr<pq::Result> r = conn.Run(kExtendTree, params, "extending the tree");
      if (!r.ok()) return r.status();
      if (r->affected() != 1) {
        (void)Exec(conn, "ROLLBACK");
        return WhyRefused(conn, *epoch, old_size);
      }
      if (!nodes.empty()) {
        pq::Params rows;
        rows.Int2Array(levels).Int8Array(indexes).ByteaArray(hashes);
        if (auto inserted = conn.Run(kInsertNodes, rows, "storing tree nodes"); !inserted.ok()) {
          return inserted.status();
        }
      }
      return Exec(conn, "COMMIT");
    });
  }

  absl::Status PutCheckpoint(uint64_t tree_size, const SignedCheckpoint& checkpoint) override {
    absl::StatusOr<int64_t> epoch = s_->SequencerEpoch(true);
    if (!epoch.ok()) return epoch.status();
    if (*epoch == 0) return NotSequencer();
    tellonce::v1::Checkpoint body;
    const bool parsed = body.ParseFromString(checkpoint.body());
    const std::string bytes = checkpoint.SerializeAsString();
    return s_->reads().With(false, [&](pq::Connection& conn) -> absl::Status {
      if (absl::Status s = Exec(conn, "BEGIN"); !s.ok()) return s;
      absl::StatusOr<pq::Result> row =
          conn.Run(kSequencerShare, pq::Params(), "checking the sequencer epoch");
      if (!row.ok()) return row.status();
      if (row->rows() != 1 || row->Int(0, 0) != *epoch) {
        (void)Exec(conn, "ROLLBACK");
        s_->LostSequencer(*epoch);
        return absl::AbortedError(
            absl::StrCat("postgres: checkpoint refused: the sequencer epoch ", *epoch,
                         " is no longer current (another replica took over)"));
      }
      const uint64_t stored = static_cast<uint64_t>(row->Int(0, 1));
      if (stored < tree_size) {
        (void)Exec(conn, "ROLLBACK");
        return absl::FailedPreconditionError(absl::StrCat(
            "checkpoint of ", tree_size, " leaves: the stored tree has only ", stored));
      }
      pq::Params params;
      params.Int8(ClampToInt64(tree_size)).Bytes(parsed ? body.root_hash() : "");
      if (parsed && body.has_signed_at()) {
        params.Time(FromProtoTime(body.signed_at()));
      } else {
        params.Null(pq::kTimestamptz);
      }
      params.Text(parsed ? body.issuer() : "").Text(checkpoint.key_id()).Int8(*epoch).Bytes(bytes);
      absl::StatusOr<pq::Result> r = conn.Run(kInsertCheckpoint, params, "storing a checkpoint");
      if (!r.ok()) return r.status();
      if (r->affected() == 0) {
        pq::Params at;
        at.Int8(ClampToInt64(tree_size));
        absl::StatusOr<pq::Result> existing = conn.Run(kCheckpointAt, at, "reading a checkpoint");
        if (!existing.ok()) return existing.status();
        if (existing->rows() == 1 && existing->Bytes(0, 0) != bytes) {
          (void)Exec(conn, "ROLLBACK");
          return absl::AlreadyExistsError(
              absl::StrCat("a different checkpoint is stored for tree size ", tree_size));
        }
      }
      return Exec(conn, "COMMIT");
    });
  }

  absl::Status ScanCheckpoints(
      uint64_t from_size, const std::function<bool(uint64_t, SignedCheckpoint&)>& visit) override {
    int64_t from = ClampToInt64(from_size);
    for (;;) {
      pq::Result chunk;
      absl::Status status = s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
        pq::Params params;
        params.Int8(from).Int4(kChunk);
        absl::StatusOr<pq::Result> r = conn.Run(kCheckpointsFrom, params, "reading checkpoints");
        if (!r.ok()) return r.status();
        chunk = *std::move(r);
        return absl::OkStatus();
      });
      if (!status.ok()) return status;
      for (int row = 0; row < chunk.rows(); ++row) {
        const int64_t size = chunk.Int(row, 0);
        SignedCheckpoint checkpoint;
        if (absl::Status s = ParseStored(chunk.Bytes(row, 1), &checkpoint,
                                         absl::StrCat("the checkpoint of size ", size));
            !s.ok()) {
          return s;
        }
        if (!visit(static_cast<uint64_t>(size), checkpoint)) return absl::OkStatus();
        from = size + 1;
      }
      if (chunk.rows() < kChunk) return absl::OkStatus();
    }
  }

 private:
  // After a refused ExtendTree: ABORTED naming the reason.
  absl::Status WhyRefused(pq::Connection& conn, int64_t epoch, uint64_t old_size) {
    absl::StatusOr<pq::Result> row = conn.Run(kSequencerRow, pq::Params(), "reading the tree size");
    if (!row.ok()) return row.status();
    if (row->rows() != 1) return absl::DataLossError("sequencer: its row is missing");
    if (row->Int(0, 0) != epoch) {
      s_->LostSequencer(epoch);
      return absl::AbortedError(
          absl::StrCat("postgres: tree extension refused: the sequencer epoch ", epoch,
                       " is no longer current (another replica took over)"));
    }
    return absl::AbortedError(absl::StrCat("postgres: tree extension refused: the stored tree has ",
                                           row->Int(0, 1), " leaves, not ", old_size));
  }

  PgStorage* s_;
};

// --- Deliveries --------------------------------------------------------------------------

constexpr pq::Statement kDeliveriesFrom{"r_deliveries_from", R"sql(
SELECT sequence, record FROM deliveries WHERE sequence >= $1 ORDER BY sequence LIMIT $2
)sql"};
constexpr pq::Statement kPending{"r_pending", R"sql(
SELECT record FROM deliveries
WHERE subscriber = $1 AND state = 'PENDING' AND sequence >= $2 AND sequence < $3
ORDER BY sequence LIMIT $4
)sql"};
constexpr pq::Statement kGetDelivery{"r_delivery",
                                     "SELECT record FROM deliveries WHERE sequence = $1"};
constexpr pq::Statement kUpdateDelivery{"r_update_delivery", R"sql(
UPDATE deliveries SET state = $2, attempts = $3, next_attempt_at = $4, last_error = $5,
                      record = $6
WHERE sequence = $1
)sql"};
constexpr pq::Statement kRemoveDelivery{"r_remove_delivery",
                                        "DELETE FROM deliveries WHERE sequence = $1"};

absl::StatusOr<uint64_t> SequenceOf(const Delivery& d) {
  uint64_t sequence = 0;
  if (!absl::SimpleAtoi(d.delivery_id(), &sequence)) {
    return absl::InvalidArgumentError("delivery_id: not a sequence number");
  }
  return sequence;
}

class PgDeliveryStore final : public DeliveryStore {
 public:
  explicit PgDeliveryStore(PgStorage* s) : s_(s) {}

  absl::Status Scan(uint64_t from_sequence, const std::function<bool(Delivery&)>& visit) override {
    int64_t from = ClampToInt64(from_sequence);
    for (;;) {
      pq::Result chunk;
      absl::Status status = s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
        pq::Params params;
        params.Int8(from).Int4(kChunk);
        absl::StatusOr<pq::Result> r = conn.Run(kDeliveriesFrom, params, "reading deliveries");
        if (!r.ok()) return r.status();
        chunk = *std::move(r);
        return absl::OkStatus();
      });
      if (!status.ok()) return status;
      for (int row = 0; row < chunk.rows(); ++row) {
        Delivery d;
        if (absl::Status s = ParseStored(chunk.Bytes(row, 1), &d, "a stored delivery"); !s.ok()) {
          return s;
        }
        from = chunk.Int(row, 0) + 1;
        if (!visit(d)) return absl::OkStatus();
      }
      if (chunk.rows() < kChunk) return absl::OkStatus();
    }
  }

  absl::StatusOr<std::vector<Delivery>> Pending(const std::string& subscriber, uint64_t from,
                                                uint64_t upper, size_t limit) override {
    std::vector<Delivery> out;
    if (limit == 0 || from >= upper) return out;
    absl::Status status = s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
      out.clear();
      pq::Params params;
      params.Text(subscriber)
          .Int8(ClampToInt64(from))
          .Int8(ClampToInt64(upper))
          .Int4(static_cast<int32_t>(std::min<size_t>(limit, 1 << 30)));
      absl::StatusOr<pq::Result> r = conn.Run(kPending, params, "reading pending deliveries");
      if (!r.ok()) return r.status();
      for (int row = 0; row < r->rows(); ++row) {
        Delivery& d = out.emplace_back();
        if (absl::Status s = ParseStored(r->Bytes(row, 0), &d, "a stored delivery"); !s.ok()) {
          return s;
        }
      }
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return out;
  }

  absl::StatusOr<Delivery> Get(uint64_t sequence) override {
    std::optional<Delivery> d;
    absl::Status status = s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
      pq::Params params;
      params.Int8(ClampToInt64(sequence));
      absl::StatusOr<pq::Result> r = conn.Run(kGetDelivery, params, "reading a delivery");
      if (!r.ok()) return r.status();
      if (r->rows() == 0) return absl::OkStatus();
      d.emplace();
      return ParseStored(r->Bytes(0, 0), &*d, "a stored delivery");
    });
    if (!status.ok()) return status;
    if (!d.has_value()) {
      return absl::NotFoundError(absl::StrCat("delivery ", sequence, ": not stored"));
    }
    return *std::move(d);
  }

  absl::Status Update(const Delivery& delivery) override {
    absl::StatusOr<uint64_t> sequence = SequenceOf(delivery);
    if (!sequence.ok()) return sequence.status();
    int64_t updated = 0;
    absl::Status status = s_->unsynced().With(true, [&](pq::Connection& conn) -> absl::Status {
      pq::Params params;
      params.Int8(ClampToInt64(*sequence))
          .Text(Delivery::State_Name(delivery.state()))
          .Int4(delivery.attempts());
      if (delivery.has_next_attempt_at()) {
        params.Time(FromProtoTime(delivery.next_attempt_at()));
      } else {
        params.Null(pq::kTimestamptz);
      }
      params.Text(delivery.last_error()).Bytes(delivery.SerializeAsString());
      absl::StatusOr<pq::Result> r = conn.Run(kUpdateDelivery, params, "updating a delivery");
      if (!r.ok()) return r.status();
      updated = r->affected();
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    if (updated == 0) {
      return absl::NotFoundError(absl::StrCat("delivery ", *sequence, ": not stored"));
    }
    return absl::OkStatus();
  }

  absl::Status Remove(const Delivery& delivery) override {
    absl::StatusOr<uint64_t> sequence = SequenceOf(delivery);
    if (!sequence.ok()) return sequence.status();
    return s_->unsynced().With(true, [&](pq::Connection& conn) -> absl::Status {
      pq::Params params;
      params.Int8(ClampToInt64(*sequence));
      return conn.Run(kRemoveDelivery, params, "removing a delivery").status();
    });
  }

  absl::Status Requeue(const std::vector<Delivery>& deliveries) override {
    if (deliveries.empty()) return absl::OkStatus();
    for (const Delivery& d : deliveries) {
      if (absl::StatusOr<uint64_t> s = SequenceOf(d); !s.ok()) return s.status();
    }
    return s_->reads().With(true, [&](pq::Connection& conn) -> absl::Status {
      pq::Params params;
      AppendDeliveryColumns(deliveries, params);
      return conn.Exec(DeliveryInsertSql(/*upsert=*/true), params, "re-queueing deliveries")
          .status();
    });
  }

 private:
  PgStorage* s_;
};

}  // namespace

std::unique_ptr<ConsentRows> NewConsentRows(PgStorage* storage) {
  return std::make_unique<PgConsentRows>(storage);
}
std::unique_ptr<AccessEventLog> NewAccessEventLog(PgStorage* storage) {
  return std::make_unique<PgAccessEventLog>(storage);
}
std::unique_ptr<TreeStore> NewTreeStore(PgStorage* storage) {
  return std::make_unique<PgTreeStore>(storage);
}
std::unique_ptr<DeliveryStore> NewDeliveryStore(PgStorage* storage) {
  return std::make_unique<PgDeliveryStore>(storage);
}

}  // namespace tellonce::storage::postgres::internal
