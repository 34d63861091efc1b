// The destination's first step against a fake source: what it accepts and what it refuses
// (with the reason sent back to the source) before any KVM object exists.
#include "vmm/migration_destination.h"

#include <linux/kvm.h>

#include <fstream>
#include <thread>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/scratch_dir.h"
#include "vmm/snapshot/migration.pb.h"
#include "vmm/snapshot/state_file.h"

namespace minivmm {
namespace {

using ::testing::HasSubstr;

class MigrationDestinationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(kernel_) << "not really a kernel, but a file that exists";
    address_ = *ParseMigrationAddress("unix:" + (dir_.path() / "mig.sock").string());
  }

  state::MigrationHello GoodHello() {
    state::MigrationHello hello;
    hello.set_protocol_version(kMigrationProtocolVersion);
    hello.set_state_format_version(kStateFormatVersion);
    hello.set_config_toml("[vm]\nname = \"moved\"\nmemory_mib = 64\n[boot]\nkernel = \"" +
                          kernel_.string() + "\"\n");
    kvm_cpuid_entry2 entry{};
    entry.function = 0;
    hello.set_cpuid(std::string(reinterpret_cast<const char*>(&entry), sizeof(entry)));
    hello.set_memory_bytes(64 << 20);
    return hello;
  }

  // Runs AcceptMigration while a fake source connects and sends `hello`; returns what the
  // destination made of it, and what it answered (when it refused).
  absl::StatusOr<IncomingMigration> Accept(const state::MigrationHello& hello,
                                           std::string* answer) {
    std::thread source([&] {
      absl::StatusOr<MigrationChannel> channel;
      for (int i = 0; i < 200; ++i) {  // until the destination listens
        channel = MigrationChannel::Connect(address_, absl::Seconds(2));
        if (channel.ok()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ASSERT_TRUE(channel.ok()) << channel.status();
      ASSERT_TRUE(channel->Send(MigrationMessage::kHello, hello.SerializeAsString()).ok());
      absl::StatusOr<MigrationChannel::Message> reply = channel->Receive(1 << 16);
      if (reply.ok() && reply->type == MigrationMessage::kRefuse) {
        state::MigrationError error;
        error.ParseFromString(reply->payload);
        *answer = error.reason();
      }
    });
    absl::StatusOr<IncomingMigration> incoming = AcceptMigration(address_, absl::Seconds(2));
    // The fake source waits for an answer: give an accepted one its end of the conversation.
    if (incoming.ok()) (void)incoming->channel.Send(MigrationMessage::kAccept);
    source.join();
    return incoming;
  }

  testing_scratch::ScratchDir dir_{"migration_destination_test"};
  std::filesystem::path kernel_ = dir_.path() / "vmlinuz";
  MigrationAddress address_;
};

TEST_F(MigrationDestinationTest, TakesTheDescriptionAndCpuidOfAGoodHello) {
  std::string answer;
  absl::StatusOr<IncomingMigration> incoming = Accept(GoodHello(), &answer);
  ASSERT_TRUE(incoming.ok()) << incoming.status();
  EXPECT_EQ(incoming->config.name, "moved");
  EXPECT_EQ(incoming->config.memory_mib, 64u);
  EXPECT_EQ(incoming->cpuid.size(), 1u);
  EXPECT_EQ(answer, "");
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "mig.sock")) << "listening socket left";
}

TEST_F(MigrationDestinationTest, RefusesAnotherProtocolVersionTellingTheSourceBothVersions) {
  state::MigrationHello hello = GoodHello();
  hello.set_protocol_version(kMigrationProtocolVersion + 1);
  std::string answer;
  absl::StatusOr<IncomingMigration> incoming = Accept(hello, &answer);
  ASSERT_FALSE(incoming.ok());
  EXPECT_THAT(incoming.status().message(), HasSubstr("refused the incoming migration"));
  EXPECT_THAT(answer, HasSubstr(absl::StrFormat("protocol version %d, this minivmm version %d",
                                                kMigrationProtocolVersion + 1,
                                                kMigrationProtocolVersion)));
}

TEST_F(MigrationDestinationTest, RefusesANewerStateFormat) {
  state::MigrationHello hello = GoodHello();
  hello.set_state_format_version(kStateFormatVersion + 1);
  std::string answer;
  EXPECT_FALSE(Accept(hello, &answer).ok());
  EXPECT_THAT(answer, HasSubstr("state format version"));
}

TEST_F(MigrationDestinationTest, RefusesADescriptionItCannotUseNamingTheProblem) {
  state::MigrationHello hello = GoodHello();
  hello.set_config_toml("[vm]\nmemory_mib = 64\n[boot]\nkernel = \"/nonexistent/vmlinuz\"\n");
  std::string answer;
  EXPECT_FALSE(Accept(hello, &answer).ok());
  EXPECT_THAT(answer, HasSubstr("/nonexistent/vmlinuz"));
}

TEST_F(MigrationDestinationTest, RefusesAMemorySizeThatDisagreesWithTheDescription) {
  state::MigrationHello hello = GoodHello();
  hello.set_memory_bytes(128 << 20);
  std::string answer;
  EXPECT_FALSE(Accept(hello, &answer).ok());
  EXPECT_THAT(answer, HasSubstr("for a 64 MiB VM"));
}

}  // namespace
}  // namespace minivmm
