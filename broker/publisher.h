#ifndef TELLONCE_BROKER_PUBLISHER_H_
#define TELLONCE_BROKER_PUBLISHER_H_

#include <functional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "broker/access_log.h"
#include "broker/outbox.h"
#include "consent/consent_store.h"
#include "consent/registry.h"
#include "consent/validation.h"
#include "storage/storage.h"
#include "tellonce/v1/notification.pb.h"

namespace tellonce::broker {

// Checks a PublishChange request from `provider`: event_id (token), citizen_id
// (directory rule), event_type ([A-Z][A-Z0-9_]{0,63}), attributes (1..max per consent,
// in the catalogue, no repeats), occurred_at (set, not more than a day ahead of `now`).
// INVALID_ARGUMENT "<field>: <reason>"; PERMISSION_DENIED "attributes[i]: <provider>
// is not authoritative for it" when the catalogue names another provider.
absl::Status ValidatePublish(const tellonce::v1::PublishChangeRequest& request,
                             const std::string& provider, const consent::Directory& directory,
                             const consent::RequestLimits& limits, absl::Time now);

// Design: the core of "tell us once" (flow 3) behind NotificationService. For one
// change reported by its authoritative provider it finds the subscriptions that match
// (event type or attribute), decides for each subscriber whether it has a basis at this
// moment (consent::NotificationBasis), and writes, in one storage transaction and so
// one durable write: an outbox delivery per subscriber with a basis, an access event per
// subscriber (ALLOWED with the basis, or DENIED), and the idempotency record of the
// event id. Only then does it answer and hand the deliveries to the Outbox. A repeated
// event id with the same content answers replayed and writes nothing. Thread-safe.
class ChangePublisher {
 public:
  // None owned; all must outlive the publisher.
  ChangePublisher(const consent::DirectoryHolder* directory, consent::ConsentStore* store,
                  storage::Storage* storage, Outbox* outbox, consent::RequestLimits limits)
      : directory_(directory), store_(store), storage_(storage), outbox_(outbox), limits_(limits) {}

  using Done = absl::AnyInvocable<void(absl::StatusOr<tellonce::v1::PublishChangeResponse>)>;
  // `provider` is the caller, already authorized with the provider role. `done` runs
  // once the deliveries are durable (on the commit thread), or with the error.
  void Publish(const std::string& provider, const tellonce::v1::PublishChangeRequest& request,
               Done done);

 private:
  const consent::DirectoryHolder* directory_;
  consent::ConsentStore* store_;
  storage::Storage* storage_;
  Outbox* outbox_;
  consent::RequestLimits limits_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_PUBLISHER_H_
