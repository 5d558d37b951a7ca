#ifndef TELLONCE_BROKER_DISPATCH_OPTIONS_H_
#define TELLONCE_BROKER_DISPATCH_OPTIONS_H_

#include "absl/time/time.h"

namespace tellonce::broker {

// How the dispatcher of change notifications (Outbox) delivers and retries
// (BrokerConfig.notifications). On its own so that the configuration can name it without
// the outbox and its storage.
struct DispatchOptions {
  // Deliveries in flight per subscriber (never two for one citizen). Default 16.
  int window = 16;
  // Pending deliveries held in memory per subscriber (the oldest ones); the rest stay
  // in the database and are read back, oldest first, as these drain. Default 1024;
  // must be at least `window`.
  int memory_window = 1024;
  // Back-off after the n-th failure: min(initial * 2^(n-1), max), times a random
  // factor in [0.5, 1.5). Defaults 200 ms and 60 s.
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(60);
  // A delivery is parked as DEAD after this many failed attempts, or once it is this
  // old and has failed at least once. Defaults 20 and 24 h.
  int max_attempts = 20;
  absl::Duration max_age = absl::Hours(24);
  // Deadline of one DeliverChange call. Default 5 s.
  absl::Duration call_timeout = absl::Seconds(5);
  // A DEAD delivery published longer ago than this is dropped (the admin had that long
  // to re-queue it); swept at start and then every `sweep_interval`. Defaults 30 days
  // and 1 h.
  absl::Duration dead_retention = absl::Hours(24 * 30);
  absl::Duration sweep_interval = absl::Hours(1);
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_DISPATCH_OPTIONS_H_
