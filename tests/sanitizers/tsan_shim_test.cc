// Built only in the ThreadSanitizer build: fails (TSan reports a race and exits 66) if
// absl_tsan_shim.cc stops telling TSan about absl::Mutex, Condition waits and
// Notification, as it would with an abseil whose symbols the shim does not know.

#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace {

TEST(TsanShimTest, MutexProtectedCounterIsNotARace) {
  absl::Mutex mu;
  int counter = 0;
  auto add = [&] {
    for (int i = 0; i < 1000; ++i) {
      absl::MutexLock lock(&mu);
      ++counter;
    }
  };
  std::thread a(add), b(add);
  a.join();
  b.join();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(counter, 2000);
}

TEST(TsanShimTest, NotificationPublishesWhatWasWrittenBefore) {
  int value = 0;
  absl::Notification ready;
  std::thread writer([&] {
    value = 42;
    ready.Notify();
  });
  ready.WaitForNotification();
  EXPECT_EQ(value, 42);
  writer.join();
}

TEST(TsanShimTest, AwaitedConditionSeesTheWriteThatMadeItTrue) {
  absl::Mutex mu;
  bool flag = false;
  int payload = 0;
  std::thread writer([&] {
    absl::MutexLock lock(&mu);
    payload = 7;
    flag = true;
  });
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&flag));
    EXPECT_EQ(payload, 7);
  }
  writer.join();
}

}  // namespace
