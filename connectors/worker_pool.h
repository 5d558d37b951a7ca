#ifndef TELLONCE_CONNECTORS_WORKER_POOL_H_
#define TELLONCE_CONNECTORS_WORKER_POOL_H_

// Private to the connector SDK (not part of sdk.h): the threads that call the agency's
// code, so that a slow source or handler never holds one of gRPC's threads.

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tellonce::connectors {

// A fixed set of threads running queued tasks in order of submission, with a bounded
// queue: a full queue refuses work at once instead of growing. Thread-safe.
class WorkerPool {
 public:
  // Starts `threads` threads; at most `max_queued` tasks wait for one.
  WorkerPool(int threads, size_t max_queued);
  // Stop().
  ~WorkerPool();

  size_t threads() const { return threads_.size(); }

  // Queues `task`. False, without running it, when max_queued tasks are already
  // waiting or the pool is stopping.
  bool Submit(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_);

  // Runs what is queued, then joins the threads. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Work() ABSL_LOCKS_EXCLUDED(mu_);

  const size_t max_queued_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace tellonce::connectors

#endif  // TELLONCE_CONNECTORS_WORKER_POOL_H_
