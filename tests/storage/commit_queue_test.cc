// The commit queue: group commit, per-operation rollback, draining on destruction.

#include "storage/rocksdb/commit_queue.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/rocksdb/database.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::storage::rocks {
namespace {

using ::tellonce::testing::TempDir;

class CommitQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Database>> db = Database::Open({.path = dir_.path()});
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
  }

  // The durable value of `key` in kOutbox (a family no other code touches here).
  absl::StatusOr<std::string> Read(const std::string& key) {
    std::string value;
    absl::Status status = FromRocks(
        db_->db()->Get(rocksdb::ReadOptions(), db_->family(Family::kOutbox), key, &value));
    if (!status.ok()) return status;
    return value;
  }

  // Occupies the commit thread until `release` is notified, so that what is submitted
  // meanwhile is queued and forms the next group(s).
  void BlockCommitThread(CommitQueue& queue, absl::Notification& release) {
    absl::Notification started;
    queue.Submit(
        [&](GroupBatch&) {
          started.Notify();
          release.WaitForNotification();
          return absl::OkStatus();
        },
        [](absl::Status) {});
    started.WaitForNotification();
  }

  TempDir dir_;
  std::unique_ptr<Database> db_;
};

TEST_F(CommitQueueTest, ConcurrentSubmittersAllCompleteAndTheirWritesAreDurable) {
  CommitQueue queue(db_.get());
  constexpr int kThreads = 16;
  constexpr int kPerThread = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string key = absl::StrCat("k", t, "-", i);
        absl::Status status = queue.Run([key](GroupBatch& batch) {
          batch.Put(Family::kOutbox, key, "v" + key);
          return absl::OkStatus();
        });
        if (!status.ok()) ++failures;
        // Once acknowledged, the write is readable.
        absl::StatusOr<std::string> value = Read(key);
        if (!value.ok() || *value != "v" + key) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(CommitQueueTest, OperationsQueuedDuringACommitShareOneGroup) {
  CommitQueue queue(db_.get());
  absl::Notification release;
  BlockCommitThread(queue, release);

  constexpr int kOps = 100;
  std::atomic<int> ran{0};
  std::vector<int> ran_at_completion(kOps, -1);
  std::atomic<int> completed{0};
  absl::Notification all_done;
  for (int i = 0; i < kOps; ++i) {
    queue.Submit(
        [&, i](GroupBatch& batch) {
          ++ran;
          batch.Put(Family::kOutbox, absl::StrCat("g", i), "x");
          return absl::OkStatus();
        },
        [&, i](absl::Status status) {
          EXPECT_TRUE(status.ok()) << status;
          ran_at_completion[i] = ran.load();
          if (++completed == kOps) all_done.Notify();
        });
  }
  release.Notify();
  all_done.WaitForNotification();
  // Every operation ran before the first completion: one group, one write.
  for (int i = 0; i < kOps; ++i) EXPECT_EQ(ran_at_completion[i], kOps) << i;
  for (int i = 0; i < kOps; ++i) EXPECT_TRUE(Read(absl::StrCat("g", i)).ok()) << i;
}

TEST_F(CommitQueueTest, GroupsAreNoLargerThanMaxGroup) {
  CommitQueue queue(db_.get(), {.max_group = 10});
  absl::Notification release;
  BlockCommitThread(queue, release);

  constexpr int kOps = 35;
  std::atomic<int> ran{0};
  std::vector<int> ran_at_completion(kOps, -1);
  for (int i = 0; i < kOps; ++i) {
    queue.Submit(
        [&](GroupBatch&) {
          ++ran;
          return absl::OkStatus();
        },
        [&, i](absl::Status) { ran_at_completion[i] = ran.load(); });
  }
  release.Notify();
  ASSERT_TRUE(queue.Run([](GroupBatch&) { return absl::OkStatus(); }).ok());
  for (int i = 0; i < kOps; ++i) {
    EXPECT_EQ(ran_at_completion[i], std::min((i / 10 + 1) * 10, kOps)) << i;
  }
}

TEST_F(CommitQueueTest, FailingOperationLeavesNoWritesWhileOthersInTheGroupCommit) {
  CommitQueue queue(db_.get());
  absl::Notification release;
  BlockCommitThread(queue, release);

  absl::Status a, b, c;
  absl::Status c_saw_b = absl::UnknownError("not run");
  absl::Notification done;
  queue.Submit(
      [](GroupBatch& batch) {
        batch.Put(Family::kOutbox, "a", "1");
        return absl::OkStatus();
      },
      [&](absl::Status s) { a = s; });
  queue.Submit(
      [](GroupBatch& batch) {
        batch.Put(Family::kOutbox, "b1", "1");
        batch.Put(Family::kOutbox, "a", "overwritten by a failing op");
        batch.Delete(Family::kOutbox, "keep");
        return absl::InvalidArgumentError("b: refused");
      },
      [&](absl::Status s) { b = s; });
  queue.Submit(
      [&](GroupBatch& batch) {
        std::string value;
        c_saw_b = batch.Get(Family::kOutbox, "b1", &value);
        batch.Put(Family::kOutbox, "c", "1");
        return absl::OkStatus();
      },
      [&](absl::Status s) {
        c = s;
        done.Notify();
      });
  // Written before the group; the failing op's delete must not reach it.
  ASSERT_TRUE(db_->db()->Put({}, db_->family(Family::kOutbox), "keep", "1").ok());
  release.Notify();
  done.WaitForNotification();

  EXPECT_TRUE(a.ok()) << a;
  EXPECT_TRUE(absl::IsInvalidArgument(b)) << b;
  EXPECT_EQ(b.message(), "b: refused");
  EXPECT_TRUE(c.ok()) << c;
  EXPECT_TRUE(absl::IsNotFound(c_saw_b)) << c_saw_b;  // rolled back before c ran
  EXPECT_EQ(Read("a").value_or(""), "1");
  EXPECT_EQ(Read("c").value_or(""), "1");
  EXPECT_EQ(Read("keep").value_or(""), "1");
  EXPECT_TRUE(absl::IsNotFound(Read("b1").status()));
}

TEST_F(CommitQueueTest, LaterOperationsSeeEarlierWritesOfTheSameGroup) {
  CommitQueue queue(db_.get());
  absl::Notification release;
  BlockCommitThread(queue, release);

  std::string seen_after_put, seen_after_delete_status;
  absl::Status after_delete;
  queue.Submit(
      [](GroupBatch& batch) {
        batch.Put(Family::kOutbox, "x", "1");
        return absl::OkStatus();
      },
      [](absl::Status) {});
  queue.Submit(
      [&](GroupBatch& batch) {
        absl::Status s = batch.Get(Family::kOutbox, "x", &seen_after_put);
        batch.Put(Family::kOutbox, "x", "2");
        batch.Delete(Family::kOutbox, "x");
        std::string ignored;
        after_delete = batch.Get(Family::kOutbox, "x", &ignored);
        return s;
      },
      [](absl::Status) {});
  release.Notify();
  ASSERT_TRUE(queue.Run([](GroupBatch&) { return absl::OkStatus(); }).ok());
  EXPECT_EQ(seen_after_put, "1");
  EXPECT_TRUE(absl::IsNotFound(after_delete)) << after_delete;
  EXPECT_TRUE(absl::IsNotFound(Read("x").status()));
}

TEST_F(CommitQueueTest, OperationWithoutWritesCompletesOk) {
  CommitQueue queue(db_.get());
  EXPECT_TRUE(queue.Run([](GroupBatch&) { return absl::OkStatus(); }).ok());
  EXPECT_TRUE(absl::IsAborted(queue.Run([](GroupBatch&) { return absl::AbortedError("no"); })));
}

TEST_F(CommitQueueTest, DestructionDrainsQueuedOperationsThenRefusesNewOnes) {
  // Deleted by another thread below; Submit stays callable while its destructor runs.
  CommitQueue* queue = new CommitQueue(db_.get());
  absl::Notification release;
  BlockCommitThread(*queue, release);

  constexpr int kOps = 50;
  std::vector<std::atomic<int>> calls(kOps);
  std::vector<absl::Status> results(kOps);
  std::atomic<int> refused_from_completion{0};
  for (int i = 0; i < kOps; ++i) {
    queue->Submit(
        [i](GroupBatch& batch) {
          batch.Put(Family::kOutbox, absl::StrCat("d", i), "1");
          return absl::OkStatus();
        },
        [&, i, q = queue](absl::Status status) {
          ++calls[i];
          results[i] = status;
          if (i == 0) {
            // The destructor has begun: a submission is refused, and completed at once.
            q->Submit([](GroupBatch&) { return absl::OkStatus(); },
                      [&](absl::Status s) {
                        if (absl::IsUnavailable(s)) ++refused_from_completion;
                      });
          }
        });
  }
  std::thread destroyer([queue] { delete queue; });
  // Wait until the destructor has marked the queue as stopping (probes are refused),
  // then let the commit thread go.
  std::atomic<bool> stopping{false};
  while (!stopping.load()) {
    absl::SleepFor(absl::Milliseconds(1));
    queue->Submit([](GroupBatch&) { return absl::OkStatus(); },
                  [&](absl::Status s) {
                    if (absl::IsUnavailable(s)) stopping = true;
                  });
  }
  release.Notify();
  destroyer.join();

  for (int i = 0; i < kOps; ++i) {
    EXPECT_EQ(calls[i].load(), 1) << i;
    EXPECT_TRUE(results[i].ok()) << i << ": " << results[i];
    EXPECT_TRUE(Read(absl::StrCat("d", i)).ok()) << i;
  }
  EXPECT_EQ(refused_from_completion.load(), 1);
}

// Records, in order, when each operation ran in a group and when it completed.
class Trace {
 public:
  CommitQueue::Operation Op(int i) {
    return [this, i](GroupBatch&) {
      Add(absl::StrCat("run", i));
      return absl::OkStatus();
    };
  }
  CommitQueue::Completion Done(int i, absl::Notification* all_done = nullptr, int last = -1) {
    return [this, i, all_done, last](absl::Status) {
      Add(absl::StrCat("done", i));
      if (i == last) all_done->Notify();
    };
  }
  std::vector<std::string> Get() {
    absl::MutexLock lock(&mu_);
    return entries_;
  }

 private:
  void Add(std::string entry) {
    absl::MutexLock lock(&mu_);
    entries_.push_back(std::move(entry));
  }
  absl::Mutex mu_;
  std::vector<std::string> entries_ ABSL_GUARDED_BY(mu_);
};

TEST_F(CommitQueueTest, ALoneOperationIsNotHeldForOthers) {
  CommitQueue queue(db_.get(), {.gather = absl::Seconds(30)});
  absl::Notification done;
  const absl::Time start = absl::Now();
  queue.Submit(
      [](GroupBatch& batch) {
        batch.Put(Family::kOutbox, "k", "v");
        return absl::OkStatus();
      },
      [&](absl::Status status) {
        EXPECT_TRUE(status.ok()) << status;
        done.Notify();
      });
  // Far less than the 30 s it could have waited.
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(queue.counters().operations.load(), 1u);
  EXPECT_EQ(queue.counters().groups.load(), 1u);
  EXPECT_EQ(queue.counters().writes.load(), 1u);
}

TEST_F(CommitQueueTest, AfterAGroupOfSeveralTheNextWaitsForMoreUpToMaxGroup) {
  CommitQueue queue(db_.get(), {.max_group = 4, .gather = absl::Seconds(30)});
  // A group of two (both queued behind a blocked commit thread)...
  absl::Notification release;
  BlockCommitThread(queue, release);
  Trace first;
  absl::Notification first_done;
  queue.Submit(first.Op(0), first.Done(0));
  queue.Submit(first.Op(1), first.Done(1, &first_done, 1));
  release.Notify();
  ASSERT_TRUE(first_done.WaitForNotificationWithTimeout(absl::Seconds(10)));

  // ...so four operations submitted one by one go in one group: the commit thread
  // waits for them instead of writing the first alone, and stops waiting at max_group.
  Trace next;
  absl::Notification next_done;
  const uint64_t groups_before = queue.counters().groups.load();
  const absl::Time start = absl::Now();
  for (int i = 0; i < 4; ++i) {
    queue.Submit(next.Op(i), next.Done(i, &next_done, 3));
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(next_done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_THAT(next.Get(), ::testing::ElementsAre("run0", "run1", "run2", "run3", "done0", "done1",
                                                 "done2", "done3"));
  EXPECT_EQ(queue.counters().groups.load() - groups_before, 1u);
  // Operations that stage nothing need no write.
  EXPECT_EQ(queue.counters().writes.load(), 0u);
}

TEST_F(CommitQueueTest, WithACompletionThreadTheNextGroupCommitsWhileCompletionsRun) {
  CommitQueue queue(db_.get(), {.completion_thread = true});
  absl::Notification first_completing;
  absl::Notification release_first;
  absl::Notification second_ran;
  queue.Submit(
      [&](GroupBatch& batch) {
        batch.Put(Family::kOutbox, "first", "1");
        return absl::OkStatus();
      },
      [&](absl::Status status) {
        EXPECT_TRUE(status.ok()) << status;
        // Durable before its completion runs.
        EXPECT_TRUE(Read("first").ok());
        first_completing.Notify();
        release_first.WaitForNotification();
      });
  EXPECT_TRUE(first_completing.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::Notification second_done;
  queue.Submit(
      [&](GroupBatch& batch) {
        batch.Put(Family::kOutbox, "second", "2");
        second_ran.Notify();
        return absl::OkStatus();
      },
      [&](absl::Status status) {
        EXPECT_TRUE(status.ok()) << status;
        second_done.Notify();
      });
  // The first completion is still running, yet the second group commits...
  EXPECT_TRUE(second_ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // ...and its completion waits its turn behind the first.
  EXPECT_FALSE(second_done.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  release_first.Notify();  // on every path, or the queue's destructor would wait forever
  EXPECT_TRUE(second_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(Read("second").ok());
}

TEST_F(CommitQueueTest, WithACompletionThreadEveryCompletionRunsOnceInOrderBeforeDestruction) {
  constexpr int kOps = 200;
  std::vector<int> order;
  absl::Mutex mu;
  {
    CommitQueue queue(db_.get(), {.max_group = 7, .completion_thread = true});
    for (int i = 0; i < kOps; ++i) {
      queue.Submit(
          [i](GroupBatch& batch) {
            batch.Put(Family::kOutbox, absl::StrCat("o", i), "x");
            return absl::OkStatus();
          },
          [&, i](absl::Status status) {
            EXPECT_TRUE(status.ok()) << status;
            absl::MutexLock lock(&mu);
            order.push_back(i);
          });
    }
  }  // the destructor drains both threads
  absl::MutexLock lock(&mu);
  ASSERT_EQ(order.size(), static_cast<size_t>(kOps));
  for (int i = 0; i < kOps; ++i) EXPECT_EQ(order[i], i);
  for (int i = 0; i < kOps; ++i) EXPECT_TRUE(Read(absl::StrCat("o", i)).ok()) << i;
}

}  // namespace
}  // namespace tellonce::storage::rocks
