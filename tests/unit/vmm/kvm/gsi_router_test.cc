// The GSI routing table as KVM sees it: every commit is the whole table (the kernel's default
// PIC/IOAPIC routes plus the MSI routes), MSI GSIs are handed out from 24 and reused, and a
// failed commit changes nothing.
#include "vmm/kvm/gsi_router.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Describe(const kvm_irq_routing_entry& entry) {
  if (entry.type == KVM_IRQ_ROUTING_IRQCHIP) {
    const char* chip = entry.u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC       ? "ioapic"
                       : entry.u.irqchip.irqchip == KVM_IRQCHIP_PIC_MASTER ? "pic-master"
                       : entry.u.irqchip.irqchip == KVM_IRQCHIP_PIC_SLAVE  ? "pic-slave"
                                                                           : "?";
    return absl::StrFormat("gsi %d %s pin %d", entry.gsi, chip, entry.u.irqchip.pin);
  }
  if (entry.type == KVM_IRQ_ROUTING_MSI) {
    return absl::StrFormat("gsi %d msi %#x:%#x data %#x flags %d", entry.gsi,
                           entry.u.msi.address_hi, entry.u.msi.address_lo, entry.u.msi.data,
                           entry.flags);
  }
  return absl::StrFormat("gsi %d type %d", entry.gsi, entry.type);
}

std::vector<std::string> Describe(std::span<const kvm_irq_routing_entry> table) {
  std::vector<std::string> lines;
  for (const kvm_irq_routing_entry& entry : table) lines.push_back(Describe(entry));
  return lines;
}

// Records every committed table; fails the commit while `fail` is set.
class FakeKvm {
 public:
  GsiRouter::CommitFn Commit() {
    return [this](std::span<const kvm_irq_routing_entry> table) {
      absl::MutexLock lock(&mutex_);
      if (fail_) return absl::InvalidArgumentError("KVM_SET_GSI_ROUTING(fake): Invalid argument");
      commits_.push_back(Describe(table));
      return absl::OkStatus();
    };
  }
  void set_fail(bool fail) {
    absl::MutexLock lock(&mutex_);
    fail_ = fail;
  }
  std::vector<std::vector<std::string>> commits() const {
    absl::MutexLock lock(&mutex_);
    return commits_;
  }
  // The table KVM has now.
  std::vector<std::string> table() const {
    absl::MutexLock lock(&mutex_);
    return commits_.empty() ? Describe(GsiRouter::DefaultRoutes()) : commits_.back();
  }
  // The entries after the default routes in the table KVM has now.
  std::vector<std::string> msi_routes() const {
    std::vector<std::string> all = table();
    const size_t defaults = GsiRouter::DefaultRoutes().size();
    return std::vector<std::string>(all.begin() + defaults, all.end());
  }

 private:
  mutable absl::Mutex mutex_;
  bool fail_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::vector<std::string>> commits_ ABSL_GUARDED_BY(mutex_);
};

constexpr MsiMessage kMessageA{.address = 0xfee00000, .data = 0x4041};
constexpr MsiMessage kMessageB{.address = 0xfee01000, .data = 0x0032};

TEST(GsiRouterTest, DefaultRoutesAreTheKernelsX86Table) {
  std::vector<std::string> expected;
  for (int gsi = 0; gsi < 16; ++gsi) {
    expected.push_back(absl::StrFormat("gsi %d ioapic pin %d", gsi, gsi));
    expected.push_back(
        absl::StrFormat("gsi %d %s pin %d", gsi, gsi < 8 ? "pic-master" : "pic-slave", gsi % 8));
  }
  for (int gsi = 16; gsi < 24; ++gsi) {
    expected.push_back(absl::StrFormat("gsi %d ioapic pin %d", gsi, gsi));
  }
  EXPECT_THAT(Describe(GsiRouter::DefaultRoutes()), ElementsAreArray(expected));
  // Spot checks against the kernel's ROUTING_ENTRY2(2) and ROUTING_ENTRY2(9).
  EXPECT_THAT(expected, Contains("gsi 2 pic-master pin 2"));
  EXPECT_THAT(expected, Contains("gsi 9 pic-slave pin 1"));
  EXPECT_EQ(expected.size(), 40u);
}

TEST(GsiRouterTest, AllocatesFromGsi24UpwardWithoutCommitting) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  EXPECT_EQ(*router.AllocateGsi(), 24u);
  EXPECT_EQ(*router.AllocateGsi(), 25u);
  EXPECT_EQ(*router.AllocateGsi(), 26u);
  EXPECT_TRUE(kvm.commits().empty());
}

TEST(GsiRouterTest, EveryCommitIsTheDefaultTablePlusTheMsiRoutes) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  const uint32_t a = *router.AllocateGsi();
  const uint32_t b = *router.AllocateGsi();
  ASSERT_TRUE(router.SetMsiRoute(b, kMessageB).ok());
  ASSERT_TRUE(router.SetMsiRoute(a, kMessageA).ok());
  ASSERT_TRUE(router.RemoveRoute(b).ok());

  const std::vector<std::string> defaults = Describe(GsiRouter::DefaultRoutes());
  const std::vector<std::vector<std::string>> commits = kvm.commits();
  ASSERT_EQ(commits.size(), 3u);
  for (const std::vector<std::string>& commit : commits) {
    ASSERT_GE(commit.size(), defaults.size());
    EXPECT_THAT(std::vector<std::string>(commit.begin(), commit.begin() + defaults.size()),
                ElementsAreArray(defaults));
  }
  EXPECT_EQ(commits[0].back(), "gsi 25 msi 0:0xfee01000 data 0x32 flags 0");
  // MSI routes come in GSI order.
  EXPECT_THAT(std::vector<std::string>(commits[1].begin() + defaults.size(), commits[1].end()),
              ElementsAre("gsi 24 msi 0:0xfee00000 data 0x4041 flags 0",
                          "gsi 25 msi 0:0xfee01000 data 0x32 flags 0"));
  EXPECT_THAT(kvm.msi_routes(), ElementsAre("gsi 24 msi 0:0xfee00000 data 0x4041 flags 0"));
}

TEST(GsiRouterTest, SplitsA64BitAddressIntoLowAndHighWords) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  const uint32_t gsi = *router.AllocateGsi();
  ASSERT_TRUE(router.SetMsiRoute(gsi, {.address = 0x12345678'fee0200cull, .data = 7}).ok());
  EXPECT_THAT(kvm.msi_routes(), ElementsAre("gsi 24 msi 0x12345678:0xfee0200c data 0x7 flags 0"));
}

TEST(GsiRouterTest, UpdatingARouteReplacesItsEntry) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  const uint32_t gsi = *router.AllocateGsi();
  ASSERT_TRUE(router.SetMsiRoute(gsi, kMessageA).ok());
  ASSERT_TRUE(router.SetMsiRoute(gsi, kMessageB).ok());
  EXPECT_THAT(kvm.msi_routes(), ElementsAre("gsi 24 msi 0:0xfee01000 data 0x32 flags 0"));
}

TEST(GsiRouterTest, SettingTheSameMessageAgainCommitsNothing) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  const uint32_t gsi = *router.AllocateGsi();
  ASSERT_TRUE(router.SetMsiRoute(gsi, kMessageA).ok());
  ASSERT_TRUE(router.SetMsiRoute(gsi, kMessageA).ok());
  EXPECT_EQ(kvm.commits().size(), 1u);
}

TEST(GsiRouterTest, RemoveRouteKeepsTheGsiAllocated) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  const uint32_t gsi = *router.AllocateGsi();
  ASSERT_TRUE(router.SetMsiRoute(gsi, kMessageA).ok());
  ASSERT_TRUE(router.RemoveRoute(gsi).ok());
  EXPECT_THAT(kvm.msi_routes(), ElementsAre());
  EXPECT_EQ(*router.AllocateGsi(), 25u);
  // Removing a route that is not there commits nothing.
  ASSERT_TRUE(router.RemoveRoute(gsi).ok());
  EXPECT_EQ(kvm.commits().size(), 2u);
  // The GSI can be routed again.
  ASSERT_TRUE(router.SetMsiRoute(gsi, kMessageB).ok());
  EXPECT_THAT(kvm.msi_routes(), ElementsAre("gsi 24 msi 0:0xfee01000 data 0x32 flags 0"));
}

TEST(GsiRouterTest, FreeingARoutedGsiDropsItsRouteAndTheGsiIsReused) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  const uint32_t a = *router.AllocateGsi();
  const uint32_t b = *router.AllocateGsi();
  ASSERT_TRUE(router.SetMsiRoute(a, kMessageA).ok());
  ASSERT_TRUE(router.SetMsiRoute(b, kMessageB).ok());
  ASSERT_TRUE(router.FreeGsi(a).ok());
  EXPECT_THAT(kvm.msi_routes(), ElementsAre("gsi 25 msi 0:0xfee01000 data 0x32 flags 0"));
  // The lowest free GSI comes back first, with no route.
  EXPECT_EQ(*router.AllocateGsi(), a);
  EXPECT_THAT(kvm.msi_routes(), Not(Contains(HasSubstr("gsi 24 "))));
  EXPECT_EQ(*router.AllocateGsi(), 26u);
}

TEST(GsiRouterTest, FreeingAnUnroutedGsiCommitsNothing) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  const uint32_t gsi = *router.AllocateGsi();
  ASSERT_TRUE(router.FreeGsi(gsi).ok());
  EXPECT_TRUE(kvm.commits().empty());
  EXPECT_EQ(*router.AllocateGsi(), gsi);
}

TEST(GsiRouterTest, RunningOutOfGsisIsAClearError) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  for (uint32_t i = GsiRouter::kFirstMsiGsi; i < GsiRouter::kGsiLimit; ++i) {
    ASSERT_EQ(*router.AllocateGsi(), i);
  }
  absl::StatusOr<uint32_t> none = router.AllocateGsi();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(none.status().message()),
              HasSubstr("no free MSI GSI: all 1000 GSIs in [24, 1024) are in use"));
  ASSERT_TRUE(router.FreeGsi(500).ok());
  EXPECT_EQ(*router.AllocateGsi(), 500u);
}

TEST(GsiRouterTest, RejectsGsisItDidNotHandOut) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  // A legacy GSI, a free MSI GSI, and one past the limit.
  for (uint32_t gsi : {4u, 24u, GsiRouter::kGsiLimit}) {
    absl::Status status = router.SetMsiRoute(gsi, kMessageA);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << gsi;
    EXPECT_THAT(std::string(status.message()),
                HasSubstr(absl::StrFormat("GSI %d is not an allocated MSI GSI", gsi)));
    EXPECT_FALSE(router.RemoveRoute(gsi).ok());
    EXPECT_FALSE(router.FreeGsi(gsi).ok());
  }
  const uint32_t gsi = *router.AllocateGsi();
  ASSERT_TRUE(router.FreeGsi(gsi).ok());
  EXPECT_FALSE(router.FreeGsi(gsi).ok());
  EXPECT_TRUE(kvm.commits().empty());
}

TEST(GsiRouterTest, FailedCommitReportsTheErrorAndKeepsThePreviousTable) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  const uint32_t a = *router.AllocateGsi();
  const uint32_t b = *router.AllocateGsi();
  ASSERT_TRUE(router.SetMsiRoute(a, kMessageA).ok());

  kvm.set_fail(true);
  absl::Status status = router.SetMsiRoute(a, kMessageB);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("routing GSI 24 to MSI address 0xfee01000 data 0x32: "
                        "KVM_SET_GSI_ROUTING(fake): Invalid argument"));
  EXPECT_THAT(std::string(router.RemoveRoute(a).message()),
              HasSubstr("removing the route of GSI 24: KVM_SET_GSI_ROUTING"));
  EXPECT_FALSE(router.SetMsiRoute(b, kMessageB).ok());
  kvm.set_fail(false);

  // The next commit carries the last table that KVM accepted, plus only the new change.
  const uint32_t c = *router.AllocateGsi();
  ASSERT_TRUE(router.SetMsiRoute(c, kMessageB).ok());
  EXPECT_THAT(kvm.msi_routes(), ElementsAre("gsi 24 msi 0:0xfee00000 data 0x4041 flags 0",
                                            "gsi 26 msi 0:0xfee01000 data 0x32 flags 0"));
  // And a retry of the failed update goes through.
  ASSERT_TRUE(router.SetMsiRoute(a, kMessageB).ok());
  EXPECT_THAT(kvm.msi_routes(), ElementsAre("gsi 24 msi 0:0xfee01000 data 0x32 flags 0",
                                            "gsi 26 msi 0:0xfee01000 data 0x32 flags 0"));
}

TEST(GsiRouterTest, FailedFreeKeepsTheGsiRoutedAndOutOfCirculation) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  const uint32_t gsi = *router.AllocateGsi();
  ASSERT_TRUE(router.SetMsiRoute(gsi, kMessageA).ok());
  kvm.set_fail(true);
  absl::Status status = router.FreeGsi(gsi);
  EXPECT_THAT(std::string(status.message()), HasSubstr("freeing GSI 24: KVM_SET_GSI_ROUTING"));
  kvm.set_fail(false);
  // Not handed out again while KVM still routes it to the old message.
  EXPECT_EQ(*router.AllocateGsi(), 25u);
  EXPECT_THAT(kvm.msi_routes(), ElementsAre("gsi 24 msi 0:0xfee00000 data 0x4041 flags 0"));
  // Freeing can be retried.
  ASSERT_TRUE(router.FreeGsi(gsi).ok());
  EXPECT_THAT(kvm.msi_routes(), ElementsAre());
}

TEST(GsiRouterTest, ConcurrentUpdatesFromManyThreadsAllLand) {
  FakeKvm kvm;
  GsiRouter router(kvm.Commit());
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&router, t] {
      for (int round = 0; round < 50; ++round) {
        absl::StatusOr<uint32_t> gsi = router.AllocateGsi();
        ASSERT_TRUE(gsi.ok());
        ASSERT_TRUE(router.SetMsiRoute(*gsi, {.address = 0xfee00000, .data = 0x30u + t}).ok());
        if (round % 2 == 0) {
          ASSERT_TRUE(router.FreeGsi(*gsi).ok());
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  // Each thread kept 25 routed GSIs; the last commit holds exactly those.
  EXPECT_EQ(kvm.msi_routes().size(), kThreads * 25u);
  EXPECT_EQ(kvm.commits().size(), kThreads * (50u + 25u));
}

}  // namespace
}  // namespace minivmm
