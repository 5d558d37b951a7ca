#include "broker/outbox.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "broker/access_log.h"
#include "ops/log.h"
#include "grpcpp/client_context.h"
#include "proto/time.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"

namespace tellonce::broker {
namespace {

using consent::Family;
using tellonce::v1::Delivery;

constexpr char kSequenceKey[] = "outbox.sequence";
// Deliveries looked at per subscriber and dispatcher pass.
constexpr int kScanLimit = 4096;
constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 500;

uint64_t SequenceOf(const Delivery& d) {
  uint64_t sequence = 0;
  (void)absl::SimpleAtoi(d.delivery_id(), &sequence);
  return sequence;
}

tellonce::v1::DeliverChangeRequest ToRequest(const Delivery& d) {
  tellonce::v1::DeliverChangeRequest r;
  const tellonce::v1::ChangeEvent& e = d.event();
  r.set_event_id(e.event_id());
  r.set_provider(e.provider());
  r.set_citizen_id(e.citizen_id());
  r.set_event_type(e.event_type());
  *r.mutable_attributes() = e.attributes();
  *r.mutable_occurred_at() = e.occurred_at();
  *r.mutable_published_at() = e.published_at();
  r.set_delivery_id(d.delivery_id());
  *r.mutable_basis() = d.basis();
  return r;
}

}  // namespace

std::string Outbox::Key(uint64_t sequence) { return absl::StrCat("d", BigEndian64(sequence)); }

absl::StatusOr<std::unique_ptr<Outbox>> Outbox::Start(consent::Database* db,
                                                      const consent::DirectoryHolder* directory,
                                                      ConnectorPool* connectors,
                                                      DispatchOptions options) {
  std::unique_ptr<Outbox> outbox(new Outbox(db, directory, connectors, options));
  rocksdb::ReadOptions read_options;
  std::unique_ptr<rocksdb::Iterator> it(
      db->db()->NewIterator(read_options, db->family(Family::kOutbox)));
  size_t loaded = 0;
  {
    absl::MutexLock lock(&outbox->mu_);
    for (it->Seek("d"); it->Valid() && it->key().starts_with("d"); it->Next()) {
      Delivery d;
      if (!d.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
        return absl::DataLossError("a stored delivery is corrupt");
      }
      if (d.state() == Delivery::DEAD) ++outbox->subscribers_[d.subscriber()].dead;
      if (d.state() != Delivery::PENDING) continue;
      const uint64_t sequence = SequenceOf(d);
      outbox->subscribers_[d.subscriber()].pending.emplace(sequence, std::move(d));
      ++loaded;
    }
  }
  if (!it->status().ok()) return consent::FromRocks(it->status());
  if (loaded > 0) ops::LogInfo(absl::StrCat("outbox: ", loaded, " deliveries still owed"));
  outbox->thread_ = std::thread([raw = outbox.get()] { raw->Run(); });
  return outbox;
}

Outbox::~Outbox() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  // Calls in flight are cancelled (their deliveries stay owed); their completions touch
  // this object, so wait for them.
  absl::MutexLock lock(&mu_);
  for (grpc::ClientContext* context : contexts_) context->TryCancel();
  mu_.Await(absl::Condition(
      +[](int* calls) { return *calls == 0; }, &calls_in_flight_));
}

absl::StatusOr<std::vector<Delivery>> Outbox::Stage(
    consent::GroupBatch& batch, const tellonce::v1::ChangeEvent& event,
    const std::vector<std::pair<std::string, tellonce::v1::Basis>>& subscribers, absl::Time now) {
  std::string text;
  uint64_t sequence = 0;
  absl::Status read = batch.Get(Family::kMeta, kSequenceKey, &text);
  if (read.ok()) {
    if (!absl::SimpleAtoi(text, &sequence)) {
      return absl::DataLossError(absl::StrCat("metadata ", kSequenceKey, " is corrupt"));
    }
  } else if (!absl::IsNotFound(read)) {
    return read;
  }
  std::vector<Delivery> deliveries;
  for (const auto& [subscriber, basis] : subscribers) {
    Delivery& d = deliveries.emplace_back();
    d.set_delivery_id(absl::StrCat(sequence));
    d.set_subscriber(subscriber);
    *d.mutable_event() = event;
    *d.mutable_basis() = basis;
    d.set_state(Delivery::PENDING);
    *d.mutable_created_at() = ToProtoTime(now);
    *d.mutable_next_attempt_at() = ToProtoTime(now);
    batch.Put(Family::kOutbox, Key(sequence), d.SerializeAsString());
    ++sequence;
  }
  if (!deliveries.empty()) batch.Put(Family::kMeta, kSequenceKey, absl::StrCat(sequence));
  return deliveries;
}

void Outbox::Enqueue(std::vector<Delivery> deliveries) {
  absl::MutexLock lock(&mu_);
  for (Delivery& d : deliveries) {
    const uint64_t sequence = SequenceOf(d);
    subscribers_[d.subscriber()].pending.emplace(sequence, std::move(d));
  }
  wake_ = true;
}

size_t Outbox::pending() {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [name, s] : subscribers_) n += s.pending.size();
  return n;
}

size_t Outbox::dead() {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [name, s] : subscribers_) n += s.dead;
  return n;
}

std::vector<Outbox::Depth> Outbox::Depths() {
  std::vector<Depth> depths;
  {
    absl::MutexLock lock(&mu_);
    depths.reserve(subscribers_.size());
    for (const auto& [name, s] : subscribers_) {
      depths.push_back({.subscriber = name, .pending = s.pending.size(), .dead = s.dead});
    }
  }
  std::sort(depths.begin(), depths.end(),
            [](const Depth& a, const Depth& b) { return a.subscriber < b.subscriber; });
  return depths;
}

void Outbox::Run() {
  absl::Time next_due = absl::InfiniteFuture();
  while (true) {
    std::vector<Delivery> to_send;
    {
      absl::MutexLock lock(&mu_);
      const absl::Duration wait =
          std::clamp(next_due - absl::Now(), absl::ZeroDuration(), absl::Seconds(1));
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || wake_; };
      mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
      if (stop_) return;
      wake_ = false;
      next_due = absl::InfiniteFuture();
      const absl::Time now = absl::Now();
      for (auto& [name, s] : subscribers_) {
        if (s.in_flight >= options_.window) continue;
        absl::flat_hash_set<std::string_view> seen;
        int scanned = 0;
        for (auto& [sequence, d] : s.pending) {
          if (++scanned > kScanLimit) break;
          const std::string& citizen = d.event().citizen_id();
          // Only the oldest delivery of a citizen may go; later ones wait for it.
          if (!seen.insert(citizen).second || s.citizens_in_flight.contains(citizen)) continue;
          const absl::Time due = FromProtoTime(d.next_attempt_at());
          if (due > now) {
            next_due = std::min(next_due, due);
            continue;
          }
          s.citizens_in_flight.insert(citizen);
          ++s.in_flight;
          ++calls_in_flight_;
          to_send.push_back(d);
          if (s.in_flight >= options_.window) break;
        }
      }
    }
    for (Delivery& d : to_send) Send(std::move(d));
  }
}

void Outbox::Send(Delivery delivery) {
  absl::StatusOr<std::shared_ptr<tellonce::v1::ConnectorService::Stub>> stub =
      connectors_->StubFor(*directory_->Current(), delivery.subscriber());
  if (!stub.ok()) {
    Finished(std::move(delivery),
             grpc::Status(grpc::StatusCode::UNAVAILABLE, "no connector endpoint"));
    return;
  }
  struct Call {
    grpc::ClientContext context;
    tellonce::v1::DeliverChangeRequest request;
    tellonce::v1::DeliverChangeResponse response;
    Delivery delivery;
  };
  auto call = std::make_shared<Call>();
  call->request = ToRequest(delivery);
  call->delivery = std::move(delivery);
  // The callback holds only the call: the channel belongs to the ConnectorPool, which
  // outlives the Outbox. Dropping a channel's last reference on gRPC's callback thread
  // is not supported by gRPC 1.51.
  {
    absl::MutexLock lock(&mu_);
    contexts_.insert(&call->context);
  }
  Call* raw = call.get();
  raw->context.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
  (*stub)->async()->DeliverChange(&raw->context, &raw->request, &raw->response,
                                  [this, call = std::move(call)](grpc::Status status) mutable {
                                    Delivery delivery = std::move(call->delivery);
                                    {
                                      absl::MutexLock lock(&mu_);
                                      contexts_.erase(&call->context);
                                    }
                                    // Release the call here, while the Outbox (and so the pool's
                                    // channel) surely lives: Finished is what lets the destructor
                                    // go on.
                                    call.reset();
                                    Finished(std::move(delivery), status);
                                  });
}

absl::Duration Outbox::Backoff(int attempts) {
  absl::Duration d = options_.initial_backoff;
  for (int i = 1; i < attempts && d < options_.max_backoff; ++i) d *= 2;
  d = std::min(d, options_.max_backoff);
  uint64_t r;
  {
    absl::MutexLock lock(&mu_);
    // xorshift64*: jitter only, not security.
    random_state_ ^= random_state_ >> 12;
    random_state_ ^= random_state_ << 25;
    random_state_ ^= random_state_ >> 27;
    r = random_state_ * 0x2545f4914f6cdd1dull;
  }
  const double factor = 0.5 + static_cast<double>(r >> 11) / static_cast<double>(1ull << 53);
  return d * factor;
}

void Outbox::Finished(Delivery delivery, const grpc::Status& status) {
  const uint64_t sequence = SequenceOf(delivery);
  const absl::Time now = absl::Now();
  bool keep = false;
  if (status.ok()) {
    Erase(delivery);
  } else {
    delivery.set_attempts(delivery.attempts() + 1);
    delivery.set_last_error(absl::StrCat("gRPC status ", static_cast<int>(status.error_code()),
                                         ": ", status.error_message().substr(0, 200)));
    if (delivery.attempts() >= options_.max_attempts ||
        now - FromProtoTime(delivery.created_at()) >= options_.max_age) {
      delivery.set_state(Delivery::DEAD);
      ops::LogWarning("outbox: delivery parked as dead",
                      {{"subscriber", delivery.subscriber()},
                       {"delivery_id", delivery.delivery_id()},
                       {"event_id", delivery.event().event_id()},
                       {"attempts", absl::StrCat(delivery.attempts())}});
    } else {
      *delivery.mutable_next_attempt_at() = ToProtoTime(now + Backoff(delivery.attempts()));
      keep = true;
    }
    Write(delivery);
  }
  absl::MutexLock lock(&mu_);
  Subscriber& s = subscribers_[delivery.subscriber()];
  s.citizens_in_flight.erase(delivery.event().citizen_id());
  --s.in_flight;
  if (delivery.state() == Delivery::DEAD) ++s.dead;
  if (keep) {
    s.pending[sequence] = std::move(delivery);
  } else {
    s.pending.erase(sequence);
  }
  --calls_in_flight_;
  wake_ = true;
}

void Outbox::Write(const Delivery& delivery) {
  rocksdb::Status s = db_->db()->Put(rocksdb::WriteOptions(), db_->family(Family::kOutbox),
                                     Key(SequenceOf(delivery)), delivery.SerializeAsString());
  if (!s.ok()) ops::LogWarning(absl::StrCat("outbox: cannot record a retry: ", s.ToString()));
}

void Outbox::Erase(const Delivery& delivery) {
  rocksdb::Status s = db_->db()->Delete(rocksdb::WriteOptions(), db_->family(Family::kOutbox),
                                        Key(SequenceOf(delivery)));
  if (!s.ok()) ops::LogWarning(absl::StrCat("outbox: cannot remove a delivery: ", s.ToString()));
}

absl::StatusOr<tellonce::v1::ListDeliveriesResponse> Outbox::List(const std::string& subscriber,
                                                                  Delivery::State state,
                                                                  int page_size,
                                                                  const std::string& page_token) {
  if (page_size <= 0) page_size = kDefaultPageSize;
  page_size = std::min(page_size, kMaxPageSize);
  uint64_t after = 0;
  if (!page_token.empty() && !absl::SimpleAtoi(page_token, &after)) {
    return absl::InvalidArgumentError("page_token: malformed");
  }
  std::unique_ptr<rocksdb::Iterator> it(
      db_->db()->NewIterator(rocksdb::ReadOptions(), db_->family(Family::kOutbox)));
  tellonce::v1::ListDeliveriesResponse response;
  for (it->Seek(page_token.empty() ? std::string("d") : Key(after + 1));
       it->Valid() && it->key().starts_with("d"); it->Next()) {
    Delivery d;
    if (!d.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError("a stored delivery is corrupt");
    }
    if (!subscriber.empty() && d.subscriber() != subscriber) continue;
    if (state != Delivery::STATE_UNSPECIFIED && d.state() != state) continue;
    *response.add_deliveries() = std::move(d);
    if (response.deliveries_size() >= page_size) {
      it->Next();
      if (it->Valid() && it->key().starts_with("d")) {
        response.set_next_page_token(response.deliveries().rbegin()->delivery_id());
      }
      break;
    }
  }
  if (!it->status().ok()) return consent::FromRocks(it->status());
  return response;
}

absl::StatusOr<int> Outbox::Retry(const std::vector<std::string>& delivery_ids,
                                  const std::string& subscriber) {
  std::vector<Delivery> revived;
  auto revive = [&](Delivery d) {
    d.set_state(Delivery::PENDING);
    d.set_attempts(0);
    // A re-queued delivery gets a fresh lifetime too.
    *d.mutable_created_at() = ToProtoTime(absl::Now());
    *d.mutable_next_attempt_at() = ToProtoTime(absl::Now());
    revived.push_back(std::move(d));
  };
  if (!delivery_ids.empty()) {
    for (size_t i = 0; i < delivery_ids.size(); ++i) {
      uint64_t sequence = 0;
      const std::string field = absl::StrCat("delivery_ids[", i, "]");
      if (!absl::SimpleAtoi(delivery_ids[i], &sequence)) {
        return absl::InvalidArgumentError(absl::StrCat(field, ": malformed"));
      }
      std::string bytes;
      rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), db_->family(Family::kOutbox),
                                         Key(sequence), &bytes);
      if (s.IsNotFound()) {
        return absl::NotFoundError(absl::StrCat(field, ": no such delivery (delivered?)"));
      }
      if (!s.ok()) return consent::FromRocks(s);
      Delivery d;
      if (!d.ParseFromString(bytes)) return absl::DataLossError("a stored delivery is corrupt");
      if (d.state() != Delivery::DEAD) {
        return absl::FailedPreconditionError(absl::StrCat(field, ": not dead"));
      }
      revive(std::move(d));
    }
  } else {
    std::string token;
    do {
      absl::StatusOr<tellonce::v1::ListDeliveriesResponse> page =
          List(subscriber, Delivery::DEAD, kMaxPageSize, token);
      if (!page.ok()) return page.status();
      for (Delivery& d : *page->mutable_deliveries()) revive(std::move(d));
      token = page->next_page_token();
    } while (!token.empty());
  }
  // One synced write: once the operator is told they are re-queued, they are, even
  // across a crash; if the write fails nothing is re-queued and the operator is told.
  rocksdb::WriteBatch batch;
  for (const Delivery& d : revived) {
    batch.Put(db_->family(Family::kOutbox), Key(SequenceOf(d)), d.SerializeAsString());
  }
  rocksdb::WriteOptions synced;
  synced.sync = true;
  if (rocksdb::Status s = db_->db()->Write(synced, &batch); !s.ok()) {
    return consent::FromRocks(s);
  }
  const int count = static_cast<int>(revived.size());
  {
    absl::MutexLock lock(&mu_);
    for (const Delivery& d : revived) {
      size_t& dead = subscribers_[d.subscriber()].dead;
      if (dead > 0) --dead;
    }
  }
  Enqueue(std::move(revived));
  return count;
}

}  // namespace tellonce::broker
