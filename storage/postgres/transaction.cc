// PgTransaction: the Transaction interface over one group's SQL transaction.

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "proto/time.h"
#include "storage/postgres/internal.h"

namespace tellonce::storage::postgres::internal {
namespace {

using tellonce::v1::ConsentEvent;

// Separates attribute names inside one text value of an array parameter; the INSERT
// splits them again (string_to_array). Attribute names never contain it.
constexpr char kAttributeSeparator = '\x1f';

constexpr pq::Statement kGetConsent{"t_get_consent",
                                    "SELECT record FROM consents WHERE consent_id = $1 FOR UPDATE"};
constexpr pq::Statement kRequest{
    "t_request", "SELECT consent_id FROM consents WHERE portal = $1 AND request_id = $2"};
constexpr pq::Statement kConsentExists{"t_consent_exists",
                                       "SELECT 1 FROM consents WHERE consent_id = $1"};
constexpr pq::Statement kDropExpired{
    "t_drop_expired",
    "UPDATE consents SET expiry_seen = true WHERE consent_id = $1 AND status = 'ACTIVE'"};

// A consent and its events in one statement.
constexpr pq::Statement kInsertConsent{"t_insert_consent", R"sql(
WITH c AS (
  INSERT INTO consents (consent_id, citizen_id, consumer, portal, request_id, status, mode,
                        purpose, attributes, valid_from, expires_at, captured_at, record)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
  ON CONFLICT DO NOTHING
  RETURNING consent_id),
e AS (
  INSERT INTO consent_events (consent_id, seq, kind, at, actor, reason,
                              citizen_authenticated_by, citizen_assertion_id)
  SELECT c.consent_id, u.seq, u.kind, u.at, u.actor, u.reason, u.by, u.aid
  FROM c, unnest($14::int4[], $15::text[], $16::timestamptz[], $17::text[], $18::text[],
                 $19::text[], $20::text[]) AS u(seq, kind, at, actor, reason, by, aid))
SELECT count(*) FROM c
)sql"};

// The record, and the events it has that consent_events lacks.
constexpr pq::Statement kUpdateConsent{"t_update_consent", R"sql(
WITH c AS (
  UPDATE consents SET status = $2, record = $3 WHERE consent_id = $1 RETURNING consent_id),
e AS (
  INSERT INTO consent_events (consent_id, seq, kind, at, actor, reason,
                              citizen_authenticated_by, citizen_assertion_id)
  SELECT c.consent_id, u.seq, u.kind, u.at, u.actor, u.reason, u.by, u.aid
  FROM c, unnest($4::int4[], $5::text[], $6::timestamptz[], $7::text[], $8::text[],
                 $9::text[], $10::text[]) AS u(seq, kind, at, actor, reason, by, aid)
  ON CONFLICT DO NOTHING)
SELECT count(*) FROM c
)sql"};

constexpr pq::Statement kFingerprint{
    "t_fingerprint", "SELECT fingerprint FROM published WHERE provider = $1 AND event_id = $2"};
constexpr pq::Statement kRecordPublished{"t_record_published", R"sql(
INSERT INTO published (provider, event_id, fingerprint) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
)sql"};

constexpr pq::Statement kDeliveryNumbers{
    "t_delivery_numbers",
    "UPDATE counters SET value = value + $1 WHERE name = 'deliveries' RETURNING value - $1"};

constexpr pq::Statement kQueueEvents{"t_queue_events", R"sql(
INSERT INTO access_queue (batch, pos, at, citizen_id, consumer, provider, exchange_id,
                          attributes, purpose, basis, outcome, code, notified_event_type, event)
SELECT b.id, u.pos, u.at, u.citizen_id, u.consumer, u.provider, u.exchange_id,
       string_to_array(u.attributes, E'\x1f'), u.purpose, u.basis, u.outcome, u.code,
       u.notified_event_type, u.event
FROM (SELECT nextval('access_batches') AS id) b,
     unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[])
       WITH ORDINALITY AS u(at, citizen_id, consumer, provider, exchange_id, attributes,
                            purpose, basis, outcome, code, notified_event_type, event, pos)
)sql"};

constexpr pq::Statement kNumberEvents{"t_number_events", R"sql(
WITH c AS (
  UPDATE counters SET value = value + $13 WHERE name = 'access_events'
  RETURNING value - $13 AS first)
INSERT INTO access_events (idx, at, citizen_id, consumer, provider, exchange_id, attributes,
                           purpose, basis, outcome, code, notified_event_type, event)
SELECT c.first + u.pos - 1, u.at, u.citizen_id, u.consumer, u.provider, u.exchange_id,
       string_to_array(u.attributes, E'\x1f'), u.purpose, u.basis, u.outcome, u.code,
       u.notified_event_type, u.event
FROM c,
     unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[])
       WITH ORDINALITY AS u(at, citizen_id, consumer, provider, exchange_id, attributes,
                            purpose, basis, outcome, code, notified_event_type, event, pos)
)sql"};

constexpr char kDeliveryInsert[] = R"sql(
INSERT INTO deliveries (sequence, subscriber, citizen_id, provider, event_id, event_type, state,
                        attempts, created_at, next_attempt_at, last_error, record)
SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::int4[], $9::timestamptz[], $10::timestamptz[], $11::text[],
                     $12::bytea[])
)sql";
constexpr char kDeliveryUpsert[] = R"sql(
INSERT INTO deliveries (sequence, subscriber, citizen_id, provider, event_id, event_type, state,
                        attempts, created_at, next_attempt_at, last_error, record)
SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::int4[], $9::timestamptz[], $10::timestamptz[], $11::text[],
                     $12::bytea[])
ON CONFLICT (sequence) DO UPDATE SET
  subscriber = EXCLUDED.subscriber, citizen_id = EXCLUDED.citizen_id,
  provider = EXCLUDED.provider, event_id = EXCLUDED.event_id, event_type = EXCLUDED.event_type,
  state = EXCLUDED.state, attempts = EXCLUDED.attempts, created_at = EXCLUDED.created_at,
  next_attempt_at = EXCLUDED.next_attempt_at, last_error = EXCLUDED.last_error,
  record = EXCLUDED.record
)sql";
constexpr pq::Statement kInsertDeliveries{"t_insert_deliveries", kDeliveryInsert};

absl::Time TimeOrPast(const google::protobuf::Timestamp& t, bool has) {
  return has ? FromProtoTime(t) : absl::InfinitePast();
}

void AppendTime(pq::Params& params, const google::protobuf::Timestamp& t, bool has) {
  if (has) {
    params.Time(FromProtoTime(t));
  } else {
    params.Null(pq::kTimestamptz);
  }
}

// The events of `consent` as the seven arrays of consent_events' columns.
void AppendConsentEvents(const Consent& consent, pq::Params& params) {
  std::vector<int32_t> seq;
  std::vector<std::string> kind, actor, reason, by, aid;
  std::vector<absl::Time> at;
  for (int i = 0; i < consent.events_size(); ++i) {
    const ConsentEvent& e = consent.events(i);
    seq.push_back(i);
    kind.push_back(ConsentEvent::Kind_Name(e.kind()));
    at.push_back(TimeOrPast(e.at(), e.has_at()));
    actor.push_back(e.actor());
    reason.push_back(e.reason());
    by.push_back(e.citizen_authenticated_by());
    aid.push_back(e.citizen_assertion_id());
  }
  params.Int4Array(seq)
      .TextArray(kind)
      .TimeArray(at)
      .TextArray(actor)
      .TextArray(reason)
      .TextArray(by)
      .TextArray(aid);
}

}  // namespace

std::string EventBytes(const AccessEvent& event) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    out.SetSerializationDeterministic(true);
    event.SerializeToCodedStream(&out);
  }
  return bytes;
}

void EventColumns::Add(const AccessEvent& e) {
  at.push_back(TimeOrPast(e.at(), e.has_at()));
  citizen_id.push_back(e.citizen_id());
  consumer.push_back(e.consumer());
  provider.push_back(e.provider());
  exchange_id.push_back(e.exchange_id());
  attributes.push_back(absl::StrJoin(e.attributes(), std::string(1, kAttributeSeparator)));
  purpose.push_back(e.purpose());
  if (e.basis().has_consent_id()) {
    basis.push_back(absl::StrCat("consent:", e.basis().consent_id()));
  } else if (e.basis().has_mandate_id()) {
    basis.push_back(absl::StrCat("mandate:", e.basis().mandate_id()));
  } else {
    basis.emplace_back();
  }
  outcome.push_back(AccessEvent::Outcome_Name(e.outcome()));
  code.push_back(tellonce::v1::ResultCode_Name(e.code()));
  notified_event_type.push_back(e.notified_event_type());
  event.push_back(EventBytes(e));
}

void EventColumns::AppendTo(pq::Params& params) const {
  params.TimeArray(at)
      .TextArray(citizen_id)
      .TextArray(consumer)
      .TextArray(provider)
      .TextArray(exchange_id)
      .TextArray(attributes)
      .TextArray(purpose)
      .TextArray(basis)
      .TextArray(outcome)
      .TextArray(code)
      .TextArray(notified_event_type)
      .ByteaArray(event);
}

void AppendDeliveryColumns(const std::vector<Delivery>& deliveries, pq::Params& params) {
  std::vector<int64_t> sequence;
  std::vector<std::string> subscriber, citizen, provider, event_id, event_type, state, last_error,
      record;
  std::vector<int32_t> attempts;
  std::vector<absl::Time> created, next;
  for (const Delivery& d : deliveries) {
    int64_t s = 0;
    (void)absl::SimpleAtoi(d.delivery_id(), &s);
    sequence.push_back(s);
    subscriber.push_back(d.subscriber());
    citizen.push_back(d.event().citizen_id());
    provider.push_back(d.event().provider());
    event_id.push_back(d.event().event_id());
    event_type.push_back(d.event().event_type());
    state.push_back(Delivery::State_Name(d.state()));
    attempts.push_back(d.attempts());
    created.push_back(TimeOrPast(d.created_at(), d.has_created_at()));
    next.push_back(TimeOrPast(d.next_attempt_at(), d.has_next_attempt_at()));
    last_error.push_back(d.last_error());
    record.push_back(d.SerializeAsString());
  }
  params.Int8Array(sequence)
      .TextArray(subscriber)
      .TextArray(citizen)
      .TextArray(provider)
      .TextArray(event_id)
      .TextArray(event_type)
      .TextArray(state)
      .Int4Array(attempts)
      .TimeArray(created)
      .TimeArray(next)
      .TextArray(last_error)
      .ByteaArray(record);
}

const char* DeliveryInsertSql(bool upsert) { return upsert ? kDeliveryUpsert : kDeliveryInsert; }

absl::Status ParseStored(std::string_view bytes, google::protobuf::MessageLite* message,
                         absl::string_view what) {
  if (!message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat(what, " does not parse"));
  }
  return absl::OkStatus();
}

// --- PgTransaction -----------------------------------------------------------------------

void PgTransaction::BeginWork() {
  wrote_ = false;
  rerun_ = false;
  statement_error_ = absl::OkStatus();
  free_requests_.clear();
  free_published_.clear();
  work_events_ = EventColumns();
}

void PgTransaction::KeepWork() {
  EventColumns& g = group_events_;
  EventColumns& w = work_events_;
  auto move = [](auto& to, auto& from) {
    to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
  };
  move(g.at, w.at);
  move(g.citizen_id, w.citizen_id);
  move(g.consumer, w.consumer);
  move(g.provider, w.provider);
  move(g.exchange_id, w.exchange_id);
  move(g.attributes, w.attributes);
  move(g.purpose, w.purpose);
  move(g.basis, w.basis);
  move(g.outcome, w.outcome);
  move(g.code, w.code);
  move(g.notified_event_type, w.notified_event_type);
  move(g.event, w.event);
  work_events_ = EventColumns();
}

void PgTransaction::DiscardWork() { work_events_ = EventColumns(); }

absl::StatusOr<pq::Result> PgTransaction::Run(const pq::Statement& statement,
                                              const pq::Params& params, absl::string_view what,
                                              bool write) {
  // After a failed statement PostgreSQL refuses everything until the rollback.
  if (!statement_error_.ok()) return statement_error_;
  if (!group_error_.ok()) return group_error_;
  if (write) {
    wrote_ = true;
    any_write_ = true;
  }
  absl::StatusOr<pq::Result> result = conn_->Run(statement, params, what);
  if (!result.ok()) {
    statement_error_ = result.status();
    if (absl::IsAborted(result.status()) || absl::IsUnavailable(result.status()) || !conn_->ok()) {
      group_error_ = result.status();
    }
  }
  return result;
}

absl::Status PgTransaction::FlushEvents(Numbering numbering) {
  if (group_events_.size() == 0) return absl::OkStatus();
  pq::Params params;
  group_events_.AppendTo(params);
  absl::StatusOr<pq::Result> result;
  if (numbering == Numbering::kAtCommit) {
    params.Int8(static_cast<int64_t>(group_events_.size()));
    result = conn_->Run(kNumberEvents, params, "appending access events");
  } else {
    result = conn_->Run(kQueueEvents, params, "queueing access events");
  }
  return result.status();
}

absl::StatusOr<StoredConsent> PgTransaction::GetConsent(const std::string& consent_id) {
  pq::Params params;
  params.Text(consent_id);
  absl::StatusOr<pq::Result> result = Run(kGetConsent, params, "reading a consent", false);
  if (!result.ok()) return result.status();
  if (result->rows() == 0) return absl::NotFoundError("consent_id: no such consent");
  StoredConsent record;
  if (absl::Status parsed =
          ParseStored(result->Bytes(0, 0), &record, absl::StrCat("consent record ", consent_id));
      !parsed.ok()) {
    return parsed;
  }
  return record;
}

absl::StatusOr<std::string> PgTransaction::ConsentIdForRequest(const std::string& portal,
                                                               const std::string& request_id) {
  pq::Params params;
  params.Text(portal).Text(request_id);
  absl::StatusOr<pq::Result> result = Run(kRequest, params, "looking up a request id", false);
  if (!result.ok()) return result.status();
  if (result->rows() == 0) {
    free_requests_.emplace(portal, request_id);
    return absl::NotFoundError("request_id: not used before");
  }
  return result->String(0, 0);
}

absl::StatusOr<std::vector<Consent>> PgTransaction::ActiveConsents(const std::string& citizen_id,
                                                                   const std::string& consumer,
                                                                   int limit) {
  pq::Params params;
  params.Text(citizen_id).Text(consumer).Int4(limit);
  absl::StatusOr<pq::Result> result =
      Run(kActiveConsents, params, "reading active consents", false);
  if (!result.ok()) return result.status();
  std::vector<Consent> consents;
  consents.reserve(result->rows());
  for (int row = 0; row < result->rows(); ++row) {
    StoredConsent record;
    if (absl::Status parsed = ParseStored(result->Bytes(row, 0), &record, "a consent record");
        !parsed.ok()) {
      return parsed;
    }
    consents.push_back(std::move(*record.mutable_consent()));
  }
  return consents;
}

absl::Status PgTransaction::DropExpired(const Consent& consent) {
  pq::Params params;
  params.Text(consent.consent_id());
  return Run(kDropExpired, params, "dropping an expired consent", true).status();
}

absl::Status PgTransaction::InsertConsent(const StoredConsent& record) {
  const Consent& c = record.consent();
  // The keys, checked here so that a bad one is a clear INVALID_ARGUMENT (PostgreSQL
  // text holds no NUL).
  for (auto [value, field] :
       {std::pair{&c.consent_id(), "consent_id"}, std::pair{&c.citizen_id(), "citizen_id"},
        std::pair{&c.consumer(), "consumer"}, std::pair{&c.portal(), "portal"},
        std::pair{&c.request_id(), "request_id"}}) {
    if (value->empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
    if (value->find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": must not contain NUL"));
    }
  }
  pq::Params params;
  params.Text(c.consent_id())
      .Text(c.citizen_id())
      .Text(c.consumer())
      .Text(c.portal())
      .Text(c.request_id())
      .Text(tellonce::v1::ConsentStatus_Name(c.status()))
      .Text(tellonce::v1::ConsentMode_Name(c.mode()))
      .Text(c.purpose())
      .TextArray(std::vector<std::string>(c.attributes().begin(), c.attributes().end()));
  AppendTime(params, c.valid_from(), c.has_valid_from());
  AppendTime(params, c.expires_at(), c.has_expires_at());
  AppendTime(params, c.captured_at(), c.has_captured_at());
  params.Bytes(record.SerializeAsString());
  AppendConsentEvents(c, params);
  absl::StatusOr<pq::Result> result = Run(kInsertConsent, params, "storing a consent", true);
  if (!result.ok()) return result.status();
  if (result->Int(0, 0) == 1) return absl::OkStatus();

  // Taken. By a transaction that committed after this work found the request id free:
  // run again, and the work will find the other's consent (a retry's first result).
  if (free_requests_.contains({c.portal(), c.request_id()})) {
    rerun_ = true;
    return absl::AbortedError("request_id: taken by a concurrent grant; running again");
  }
  pq::Params id;
  id.Text(c.consent_id());
  absl::StatusOr<pq::Result> exists = Run(kConsentExists, id, "looking up a consent id", false);
  if (!exists.ok()) return exists.status();
  if (exists->rows() > 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("consent_id: ", c.consent_id(), " already exists"));
  }
  return absl::AlreadyExistsError("request_id: already used for another consent");
}

absl::Status PgTransaction::UpdateConsent(const StoredConsent& record) {
  const Consent& c = record.consent();
  pq::Params params;
  params.Text(c.consent_id())
      .Text(tellonce::v1::ConsentStatus_Name(c.status()))
      .Bytes(record.SerializeAsString());
  AppendConsentEvents(c, params);
  absl::StatusOr<pq::Result> result = Run(kUpdateConsent, params, "updating a consent", true);
  if (!result.ok()) return result.status();
  if (result->Int(0, 0) == 0) {
    return absl::NotFoundError(absl::StrCat("consent_id: ", c.consent_id(), " is not stored"));
  }
  return absl::OkStatus();
}

absl::Status PgTransaction::AppendAccessEvents(const std::vector<AccessEvent>& events) {
  // Checked here, for this work alone: the events of the whole group are written by one
  // statement, which a NUL (PostgreSQL text holds none) would fail for every work.
  for (const AccessEvent& e : events) {
    for (const std::string* text :
         {&e.citizen_id(), &e.consumer(), &e.provider(), &e.exchange_id(), &e.purpose(),
          &e.notified_event_type(), &e.basis().consent_id(), &e.basis().mandate_id()}) {
      if (text->find('\0') != std::string::npos) {
        return absl::InvalidArgumentError("access event: a text field contains NUL");
      }
    }
    for (const std::string& a : e.attributes()) {
      if (a.find('\0') != std::string::npos || a.find('\x1f') != std::string::npos) {
        return absl::InvalidArgumentError(
            "access event: an attribute name contains a control character");
      }
    }
  }
  for (const AccessEvent& e : events) work_events_.Add(e);
  return absl::OkStatus();
}

absl::StatusOr<std::string> PgTransaction::PublishedFingerprint(const std::string& provider,
                                                                const std::string& event_id) {
  pq::Params params;
  params.Text(provider).Text(event_id);
  absl::StatusOr<pq::Result> result =
      Run(kFingerprint, params, "looking up a published event", false);
  if (!result.ok()) return result.status();
  if (result->rows() == 0) {
    free_published_.emplace(provider, event_id);
    return absl::NotFoundError("event_id: not published before");
  }
  return result->String(0, 0);
}

absl::Status PgTransaction::RecordPublished(const std::string& provider,
                                            const std::string& event_id,
                                            const std::string& fingerprint) {
  pq::Params params;
  params.Text(provider).Text(event_id).Bytes(fingerprint);
  absl::StatusOr<pq::Result> result =
      Run(kRecordPublished, params, "recording a published event", true);
  if (!result.ok()) return result.status();
  if (result->affected() == 1) return absl::OkStatus();
  if (free_published_.contains({provider, event_id})) {
    rerun_ = true;
    return absl::AbortedError("event_id: published concurrently; running again");
  }
  return absl::AlreadyExistsError("event_id: already published");
}

absl::StatusOr<std::vector<Delivery>> PgTransaction::AddDeliveries(
    std::vector<Delivery> deliveries) {
  if (deliveries.empty()) return deliveries;
  pq::Params count;
  count.Int8(static_cast<int64_t>(deliveries.size()));
  absl::StatusOr<pq::Result> numbers = Run(kDeliveryNumbers, count, "numbering deliveries", true);
  if (!numbers.ok()) return numbers.status();
  if (numbers->rows() != 1) return absl::DataLossError("counters: the deliveries row is missing");
  int64_t next = numbers->Int(0, 0);
  for (Delivery& d : deliveries) {
    d.set_delivery_id(absl::StrCat(next++));
    d.set_state(Delivery::PENDING);
  }
  pq::Params rows;
  AppendDeliveryColumns(deliveries, rows);
  absl::StatusOr<pq::Result> inserted = Run(kInsertDeliveries, rows, "storing deliveries", true);
  if (!inserted.ok()) return inserted.status();
  return deliveries;
}

}  // namespace tellonce::storage::postgres::internal
