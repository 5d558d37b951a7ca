// The rollback guard's own rules (broker/checkpoint_guard.h), on its file alone: it
// never moves back by itself, and a database behind it or without its checkpoint is
// refused with the reason. The broker-level behaviour is in
// tests/integration/backup_restore_test.cc.

#include "broker/checkpoint_guard.h"

#include <sys/stat.h>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::broker {
namespace {

tellonce::v1::SignedCheckpoint Make(uint64_t size, const std::string& root) {
  tellonce::v1::Checkpoint body;
  body.set_tree_size(size);
  body.set_root_hash(root);
  body.mutable_signed_at()->set_seconds(1700000000 + static_cast<int64_t>(size));
  tellonce::v1::SignedCheckpoint checkpoint;
  checkpoint.set_body(body.SerializeAsString());
  checkpoint.set_signature("sig");
  return checkpoint;
}

class CheckpointGuardTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_.path() + "/data.checkpoint"; }
  testing::TempDir dir_;
};

TEST_F(CheckpointGuardTest, WithoutAFileAnythingPasses) {
  absl::StatusOr<std::unique_ptr<CheckpointGuard>> guard = CheckpointGuard::Load(path());
  ASSERT_TRUE(guard.ok()) << guard.status();
  EXPECT_FALSE((*guard)->held().has_value());
  EXPECT_TRUE((*guard)->Check({.size = 0}, "data").ok());
}

TEST_F(CheckpointGuardTest, RecordedCheckpointIsKeptPrivatelyAndReadBack) {
  auto guard = *CheckpointGuard::Load(path());
  ASSERT_TRUE(guard->Record(Make(5, "root5")).ok());
  struct stat st;
  ASSERT_EQ(stat(path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = *CheckpointGuard::Load(path());
  ASSERT_TRUE(again->held().has_value());
  EXPECT_EQ(again->held()->body(), Make(5, "root5").body());
}

TEST_F(CheckpointGuardTest, NeverMovesBackByItself) {
  auto guard = *CheckpointGuard::Load(path());
  ASSERT_TRUE(guard->Record(Make(5, "root5")).ok());
  EXPECT_EQ(guard->Record(Make(3, "root3")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(guard->Record(Make(5, "other")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*CheckpointGuard::Load(path()))->held()->body(), Make(5, "root5").body());
  EXPECT_TRUE(guard->Record(Make(5, "root5")).ok());
  EXPECT_TRUE(guard->Record(Make(9, "root9")).ok());
  EXPECT_EQ((*CheckpointGuard::Load(path()))->held()->body(), Make(9, "root9").body());
}

TEST_F(CheckpointGuardTest, DataBehindTheCheckpointIsARollback) {
  auto guard = *CheckpointGuard::Load(path());
  ASSERT_TRUE(guard->Record(Make(250, "root250")).ok());
  absl::Status checked = guard->Check({.size = 120, .latest = Make(100, "root100")}, "/d");
  EXPECT_EQ(checked.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(checked.message(), "signed log rollback")) << checked;
  EXPECT_TRUE(absl::StrContains(checked.message(), "holds 120 events")) << checked;
  EXPECT_TRUE(absl::StrContains(checked.message(), "size 250")) << checked;
  EXPECT_TRUE(absl::StrContains(checked.message(), path())) << checked;
  EXPECT_TRUE(absl::StrContains(checked.message(), "--accept-log-rollback")) << checked;
}

TEST_F(CheckpointGuardTest, DataWithoutTheCheckpointIsAFork) {
  auto guard = *CheckpointGuard::Load(path());
  ASSERT_TRUE(guard->Record(Make(10, "root10")).ok());
  absl::Status missing = guard->Check({.size = 30}, "/d");
  EXPECT_TRUE(absl::StrContains(missing.message(), "signed log fork")) << missing;
  absl::Status other = guard->Check({.size = 30, .at_held_size = Make(10, "another")}, "/d");
  EXPECT_TRUE(absl::StrContains(other.message(), "signed log fork")) << other;
  EXPECT_TRUE(guard->Check({.size = 30, .at_held_size = Make(10, "root10")}, "/d").ok());
}

TEST_F(CheckpointGuardTest, CorruptFileIsDataLossNamingIt) {
  std::ofstream(path()) << "not a checkpoint";
  absl::StatusOr<std::unique_ptr<CheckpointGuard>> guard = CheckpointGuard::Load(path());
  ASSERT_FALSE(guard.ok());
  EXPECT_EQ(guard.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(guard.status().message(), path()));
}

}  // namespace
}  // namespace tellonce::broker
