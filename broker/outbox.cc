#include "broker/outbox.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "broker/access_log.h"
#include "ops/log.h"
#include "grpcpp/client_context.h"
#include "proto/time.h"

namespace tellonce::broker {
namespace {

using tellonce::v1::Delivery;

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

absl::StatusOr<std::unique_ptr<Outbox>> Outbox::Start(storage::DeliveryStore* store,
                                                      const consent::DirectoryHolder* directory,
                                                      ConnectorPool* connectors,
                                                      DispatchOptions options,
                                                      ClaimSubscriber claim) {
  options.memory_window = std::max(options.memory_window, options.window);
  std::unique_ptr<Outbox> outbox(new Outbox(store, directory, connectors, options));
  outbox->claim_ = std::move(claim);
  size_t loaded = 0;
  absl::Status scanned;
  {
    absl::MutexLock lock(&outbox->mu_);
    // One pass over the stored deliveries (not held: only the counts and each
    // subscriber's window stay in memory).
    scanned = store->Scan(0, [&](Delivery& d) {
      if (d.state() == Delivery::DEAD) ++outbox->subscribers_[d.subscriber()].dead;
      if (d.state() != Delivery::PENDING) return true;
      outbox->enqueued_upto_ = std::max(outbox->enqueued_upto_, SequenceOf(d) + 1);
      outbox->Admit(std::move(d));
      ++loaded;
      return true;
    });
  }
  if (!scanned.ok()) return scanned;
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

std::vector<Delivery> Outbox::NewDeliveries(
    const tellonce::v1::ChangeEvent& event,
    const std::vector<std::pair<std::string, tellonce::v1::Basis>>& subscribers, absl::Time now) {
  std::vector<Delivery> deliveries;
  deliveries.reserve(subscribers.size());
  for (const auto& [subscriber, basis] : subscribers) {
    Delivery& d = deliveries.emplace_back();
    d.set_subscriber(subscriber);
    *d.mutable_event() = event;
    *d.mutable_basis() = basis;
    d.set_state(Delivery::PENDING);
    *d.mutable_created_at() = ToProtoTime(now);
    *d.mutable_next_attempt_at() = ToProtoTime(now);
  }
  return deliveries;
}

void Outbox::Admit(Delivery d) {
  const uint64_t sequence = SequenceOf(d);
  Subscriber& s = subscribers_[d.subscriber()];
  ++s.owed;
  if (!s.spilled && s.pending.size() < static_cast<size_t>(options_.memory_window)) {
    s.pending.emplace(sequence, std::move(d));
    return;
  }
  // Left in storage; the next refill reads it back (a re-queued dead delivery may be
  // older than the ones held, so the refill starts from it).
  if (!s.spilled || sequence < s.resume_from) s.resume_from = sequence;
  s.spilled = true;
  ++s.spill_generation;
}

void Outbox::Enqueue(std::vector<Delivery> deliveries) {
  absl::MutexLock lock(&mu_);
  if (claim_) {
    // Shared: a subscriber's deliveries in memory must stay a prefix, by sequence, of
    // its pending ones in the database, some of which other processes stored; so these
    // are read back from the database (in order) rather than admitted here.
    for (const Delivery& d : deliveries) {
      Subscriber& s = subscribers_[d.subscriber()];
      s.spilled = true;
      s.resume_from = 0;
      ++s.spill_generation;
    }
    wake_ = true;
    return;
  }
  for (Delivery& d : deliveries) {
    enqueued_upto_ = std::max(enqueued_upto_, SequenceOf(d) + 1);
    Admit(std::move(d));
  }
  wake_ = true;
}

size_t Outbox::pending() {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [name, s] : subscribers_) n += s.owed;
  return n;
}

size_t Outbox::in_memory() {
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
      depths.push_back({.subscriber = name, .pending = s.owed, .dead = s.dead});
    }
  }
  std::sort(depths.begin(), depths.end(),
            [](const Depth& a, const Depth& b) { return a.subscriber < b.subscriber; });
  return depths;
}

void Outbox::ReadBack(Refill& refill) {
  refill.next = refill.from;
  refill.exhausted = true;
  absl::StatusOr<std::vector<Delivery>> pending =
      store_->Pending(refill.subscriber, refill.from, refill.upper, refill.want + 1);
  if (!pending.ok()) {
    // Try again at the next pass.
    refill.exhausted = false;
    ops::LogWarning(
        absl::StrCat("outbox: cannot read back deliveries: ", pending.status().ToString()));
    return;
  }
  for (Delivery& d : *pending) {
    if (refill.loaded.size() >= refill.want) {
      refill.exhausted = false;
      break;
    }
    refill.next = SequenceOf(d) + 1;
    refill.loaded.push_back(std::move(d));
  }
}

void Outbox::Merge(Refill refill) {
  absl::MutexLock lock(&mu_);
  Subscriber& s = subscribers_[refill.subscriber];
  s.refilling = false;
  for (Delivery& d : refill.loaded) {
    const uint64_t sequence = SequenceOf(d);
    s.pending.emplace(sequence, std::move(d));
  }
  if (s.resume_from == refill.from) {
    if (refill.exhausted && s.spill_generation == refill.generation) {
      s.spilled = false;
    } else {
      s.resume_from = refill.exhausted ? refill.upper : refill.next;
    }
  }
  // Otherwise a re-queued delivery moved resume_from back while the index was read:
  // the next refill starts there (and skips what is already held).
  wake_ = true;
}

void Outbox::Reclaim() {
  std::vector<std::string> names;
  for (const tellonce::v1::Subscription& s : directory_->Current()->proto().subscriptions()) {
    names.push_back(s.agency());
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, s] : subscribers_) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<std::pair<std::string, bool>> claims;
  for (const std::string& name : names) {
    absl::StatusOr<bool> held = claim_(name);
    if (!held.ok()) {
      // Unknown: keep what we had; the lease says whether others may take it.
      ops::LogDebug(absl::StrCat("outbox: cannot renew a claim: ", held.status().ToString()));
      continue;
    }
    claims.emplace_back(name, *held);
  }
  absl::MutexLock lock(&mu_);
  for (const auto& [name, held] : claims) {
    Subscriber& s = subscribers_[name];
    if (held) {
      // Read the subscriber's pending deliveries again from the start: others may have
      // stored some (merged by sequence, so nothing held twice).
      s.claimed = true;
      s.spilled = true;
      s.resume_from = 0;
      ++s.spill_generation;
    } else if (s.claimed || !s.pending.empty()) {
      // Another process dispatches these now.
      s.claimed = false;
      s.pending.clear();
      s.spilled = false;
      s.owed = 0;
    }
  }
  wake_ = true;
}

void Outbox::SweepDead(absl::Time now) {
  const absl::Time cutoff = now - options_.dead_retention;
  absl::flat_hash_set<std::string> mine;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, s] : subscribers_) {
      if (!claim_ || s.claimed) mine.insert(name);
    }
  }
  std::vector<Delivery> expired;
  absl::Status scanned = store_->Scan(0, [&](Delivery& d) {
    if (d.state() == Delivery::DEAD && mine.contains(d.subscriber()) &&
        FromProtoTime(d.created_at()) < cutoff) {
      expired.push_back(std::move(d));
    }
    return true;
  });
  if (!scanned.ok()) {
    ops::LogWarning("outbox: sweeping dead deliveries failed; trying again later",
                    {{"error", scanned.ToString()}});
    return;
  }
  size_t dropped = 0;
  for (const Delivery& d : expired) {
    if (absl::Status s = store_->Remove(d); !s.ok()) {
      ops::LogWarning("outbox: dropping a dead delivery failed",
                      {{"delivery_id", d.delivery_id()}, {"error", s.ToString()}});
      continue;
    }
    ++dropped;
    absl::MutexLock lock(&mu_);
    size_t& dead = subscribers_[d.subscriber()].dead;
    if (dead > 0) --dead;
  }
  if (dropped > 0) {
    ops::LogInfo("outbox: dead deliveries past their retention dropped",
                 {{"dropped", absl::StrCat(dropped)},
                  {"retention", absl::FormatDuration(options_.dead_retention)}});
  }
}

void Outbox::Run() {
  absl::Time next_due = absl::InfiniteFuture();
  absl::Time next_claim = absl::InfinitePast();
  absl::Time next_sweep = absl::InfinitePast();
  while (true) {
    std::vector<Delivery> to_send;
    std::vector<Refill> refills;
    if (claim_ && absl::Now() >= next_claim) {
      Reclaim();
      next_claim = absl::Now() + kClaimPoll;
    }
    if (absl::Now() >= next_sweep) {
      SweepDead(absl::Now());
      next_sweep = absl::Now() + options_.sweep_interval;
    }
    {
      absl::MutexLock lock(&mu_);
      absl::Duration wait =
          std::clamp(next_due - absl::Now(), absl::ZeroDuration(), absl::Seconds(1));
      if (claim_) {
        wait = std::min(wait, std::max(next_claim - absl::Now(), absl::ZeroDuration()));
      }
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || wake_; };
      mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
      if (stop_) return;
      wake_ = false;
      next_due = absl::InfiniteFuture();
      const absl::Time now = absl::Now();
      const size_t window = static_cast<size_t>(options_.memory_window);
      for (auto& [name, s] : subscribers_) {
        if (claim_ && !s.claimed) continue;  // another process dispatches these
        if (s.spilled && !s.refilling && s.pending.size() <= window / 2) {
          s.refilling = true;
          refills.push_back({.subscriber = name,
                             .from = s.resume_from,
                             // Shared: others number deliveries too, so read them all.
                             .upper = claim_ ? UINT64_MAX : enqueued_upto_,
                             .want = window - s.pending.size(),
                             .generation = s.spill_generation});
        }
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
    for (Refill& refill : refills) {
      ReadBack(refill);
      Merge(std::move(refill));
    }
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
    if (s.owed > 0) --s.owed;
  }
  --calls_in_flight_;
  wake_ = true;
}

void Outbox::Write(const Delivery& delivery) {
  if (absl::Status s = store_->Update(delivery); !s.ok()) {
    ops::LogWarning(absl::StrCat("outbox: cannot record a retry: ", s.ToString()));
  }
}

void Outbox::Erase(const Delivery& delivery) {
  if (absl::Status s = store_->Remove(delivery); !s.ok()) {
    ops::LogWarning(absl::StrCat("outbox: cannot remove a delivery: ", s.ToString()));
  }
}

absl::StatusOr<tellonce::v1::ListDeliveriesResponse> Outbox::List(const std::string& subscriber,
                                                                  Delivery::State state,
                                                                  int page_size,
                                                                  const std::string& page_token) {
  if (page_size <= 0) page_size = kDefaultPageSize;
  page_size = std::min(page_size, kMaxPageSize);
  uint64_t after = 0;
  // The largest value is no delivery id, and after + 1 would wrap to 0.
  if (!page_token.empty() &&
      (!absl::SimpleAtoi(page_token, &after) || after == std::numeric_limits<uint64_t>::max())) {
    return absl::InvalidArgumentError("page_token: malformed");
  }
  tellonce::v1::ListDeliveriesResponse response;
  absl::Status scanned =
      store_->Scan(page_token.empty() ? 0 : after + 1, [&](Delivery& d) {
        if (response.deliveries_size() >= page_size) {
          // One stored delivery beyond the page: there may be more.
          response.set_next_page_token(response.deliveries().rbegin()->delivery_id());
          return false;
        }
        if (!subscriber.empty() && d.subscriber() != subscriber) return true;
        if (state != Delivery::STATE_UNSPECIFIED && d.state() != state) return true;
        *response.add_deliveries() = std::move(d);
        return true;
      });
  if (!scanned.ok()) return scanned;
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
      absl::StatusOr<Delivery> d = store_->Get(sequence);
      if (absl::IsNotFound(d.status())) {
        return absl::NotFoundError(absl::StrCat(field, ": no such delivery (delivered?)"));
      }
      if (!d.ok()) return d.status();
      if (d->state() != Delivery::DEAD) {
        return absl::FailedPreconditionError(absl::StrCat(field, ": not dead"));
      }
      revive(*std::move(d));
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
  if (absl::Status s = store_->Requeue(revived); !s.ok()) return s;
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
