#include "broker/publisher.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "consent/access_decision.h"
#include "certs/sha256.h"
#include "proto/identifiers.h"
#include "proto/serialize.h"
#include "proto/time.h"

namespace tellonce::broker {
namespace {

// SHA-256 of the request's deterministic serialization: a replay with the same event id
// must carry the very same request.
std::string Fingerprint(const tellonce::v1::PublishChangeRequest& request) {
  const certs::Hash digest = certs::Sha256({SerializeDeterministic(request)});
  return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

}  // namespace

absl::Status ValidatePublish(const tellonce::v1::PublishChangeRequest& request,
                             const std::string& provider, const consent::Directory& directory,
                             const consent::RequestLimits& limits, absl::Time now) {
  if (absl::Status s = consent::CheckToken("event_id", request.event_id(), limits); !s.ok()) {
    return s;
  }
  if (absl::Status s = consent::CheckCitizen(request.citizen_id(), directory, limits); !s.ok()) {
    return s;
  }
  if (!IsUpperCode(request.event_type())) {
    return consent::InvalidField("event_type", "must match [A-Z][A-Z0-9_]{0,63}");
  }
  if (request.attributes().empty())
    return consent::InvalidField("attributes", "at least one is required");
  if (static_cast<uint32_t>(request.attributes_size()) > directory.max_attributes_per_consent()) {
    return consent::InvalidField("attributes",
                                 absl::StrCat("at most ", directory.max_attributes_per_consent()));
  }
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < request.attributes_size(); ++i) {
    const std::string field = absl::StrCat("attributes[", i, "]");
    const std::string& name = request.attributes(i);
    if (absl::Status s = consent::CheckToken(field, name, limits); !s.ok()) return s;
    const tellonce::v1::AttributeDef* def = directory.FindAttribute(name);
    if (def == nullptr) return consent::InvalidField(field, "not in the attribute catalogue");
    if (!seen.insert(name).second) return consent::InvalidField(field, "repeated");
    if (def->provider() != provider) {
      return absl::PermissionDeniedError(
          absl::StrCat(field, ": ", provider, " is not authoritative for it"));
    }
  }
  if (!request.has_occurred_at()) return consent::InvalidField("occurred_at", "required");
  const google::protobuf::Timestamp& t = request.occurred_at();
  if (!IsValidProtoTime(t)) {
    return consent::InvalidField("occurred_at", "not a valid timestamp");
  }
  if (absl::FromUnixSeconds(t.seconds()) > now + absl::Hours(24)) {
    return consent::InvalidField("occurred_at", "more than a day in the future");
  }
  return absl::OkStatus();
}

void ChangePublisher::Publish(const std::string& provider,
                              const tellonce::v1::PublishChangeRequest& request, Done done) {
  std::shared_ptr<const consent::Directory> directory = directory_->Current();
  const absl::Time now = absl::Now();
  if (absl::Status s = ValidatePublish(request, provider, *directory, limits_, now); !s.ok()) {
    done(std::move(s));
    return;
  }
  const std::vector<std::string> attributes(request.attributes().begin(),
                                            request.attributes().end());
  // Subscribers whose subscription matches the event type or a changed attribute.
  std::vector<std::string> subscribers;
  for (const tellonce::v1::Subscription& sub : directory->proto().subscriptions()) {
    if (sub.agency() == provider ||
        std::find(subscribers.begin(), subscribers.end(), sub.agency()) != subscribers.end()) {
      continue;
    }
    const bool by_type = std::find(sub.event_types().begin(), sub.event_types().end(),
                                   request.event_type()) != sub.event_types().end();
    const bool by_attribute =
        std::any_of(sub.attributes().begin(), sub.attributes().end(), [&](const std::string& a) {
          return std::find(attributes.begin(), attributes.end(), a) != attributes.end();
        });
    if (by_type || by_attribute) subscribers.push_back(sub.agency());
  }

  tellonce::v1::ChangeEvent event;
  event.set_event_id(request.event_id());
  event.set_provider(provider);
  event.set_citizen_id(request.citizen_id());
  event.set_event_type(request.event_type());
  *event.mutable_attributes() = request.attributes();
  *event.mutable_occurred_at() = request.occurred_at();
  *event.mutable_published_at() = ToProtoTime(now);

  std::vector<std::pair<std::string, tellonce::v1::Basis>> with_basis;
  std::vector<tellonce::v1::AccessEvent> events;
  for (const std::string& subscriber : subscribers) {
    absl::StatusOr<std::optional<tellonce::v1::Basis>> basis = consent::NotificationBasis(
        *directory, *store_, subscriber, request.citizen_id(), attributes, now);
    if (!basis.ok()) {
      done(basis.status());
      return;
    }
    tellonce::v1::AccessEvent& e = events.emplace_back();
    *e.mutable_at() = event.published_at();
    e.set_exchange_id(request.event_id());
    e.set_consumer(subscriber);
    e.set_provider(provider);
    e.set_citizen_id(request.citizen_id());
    *e.mutable_attributes() = request.attributes();
    e.set_notified_event_type(request.event_type());
    if (basis->has_value()) {
      *e.mutable_basis() = **basis;
      e.set_outcome(tellonce::v1::AccessEvent::ALLOWED);
      e.set_code(tellonce::v1::RESULT_OK);
      with_basis.emplace_back(subscriber, **basis);
    } else {
      e.set_outcome(tellonce::v1::AccessEvent::DENIED);
      e.set_code(tellonce::v1::RESULT_NO_BASIS);
    }
  }

  struct Outcome {
    bool replayed = false;
    std::vector<tellonce::v1::Delivery> deliveries;
  };
  auto outcome = std::make_shared<Outcome>();
  const std::string fingerprint = Fingerprint(request);
  storage_->Submit(
      [outcome, provider, event_id = request.event_id(), fingerprint, event, now,
       events = std::move(events),
       with_basis = std::move(with_basis)](storage::Transaction& tx) -> absl::Status {
        outcome->replayed = false;
        outcome->deliveries.clear();
        absl::StatusOr<std::string> stored = tx.PublishedFingerprint(provider, event_id);
        if (stored.ok()) {
          if (*stored != fingerprint) {
            return consent::InvalidField("event_id", "already used for a different change");
          }
          outcome->replayed = true;
          return absl::OkStatus();
        }
        if (!absl::IsNotFound(stored.status())) return stored.status();
        std::vector<tellonce::v1::Delivery> deliveries =
            Outbox::NewDeliveries(event, with_basis, now);
        absl::StatusOr<std::vector<tellonce::v1::Delivery>> added =
            tx.AddDeliveries(std::move(deliveries));
        if (!added.ok()) return added.status();
        if (absl::Status logged = tx.AppendAccessEvents(events); !logged.ok()) return logged;
        if (absl::Status recorded = tx.RecordPublished(provider, event_id, fingerprint);
            !recorded.ok()) {
          return recorded;
        }
        outcome->deliveries = *std::move(added);
        return absl::OkStatus();
      },
      [this, outcome, done = std::move(done)](absl::Status status) mutable {
        if (!status.ok()) {
          done(std::move(status));
          return;
        }
        tellonce::v1::PublishChangeResponse response;
        response.set_replayed(outcome->replayed);
        if (!outcome->replayed) outbox_->Enqueue(std::move(outcome->deliveries));
        done(std::move(response));
      });
}

}  // namespace tellonce::broker
