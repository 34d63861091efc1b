#include "passthrough/guest_slots.h"

#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

void PrintTo(const GuestPciFunction& f, std::ostream* os) {
  *os << absl::StrFormat("00:%02x.%d", f.slot, f.function);
}

// Slot 0 holds the host bridge; slots 1 and 2 are taken by virtio devices.
bool FreeFromThree(uint8_t slot) { return slot >= 3; }

TEST(PlanGuestFunctionsTest, SixteenSingleFunctionDevicesGetSixteenSlots) {
  std::vector<std::string> addresses;
  for (int i = 0; i < 16; ++i) addresses.push_back(absl::StrFormat("0000:%02x:00.0", i + 1));
  absl::StatusOr<std::vector<GuestPciFunction>> plan = PlanGuestFunctions(addresses, FreeFromThree);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 16u);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ((*plan)[i], (GuestPciFunction{static_cast<uint8_t>(3 + i), 0})) << i;
  }
}

TEST(PlanGuestFunctionsTest, FunctionsOfOneDeviceShareASlotAndKeepTheirNumbers) {
  const std::vector<std::string> addresses = {"0000:3b:00.1", "0000:05:00.0", "0000:3b:00.0",
                                              "0000:3b:00.3"};
  absl::StatusOr<std::vector<GuestPciFunction>> plan = PlanGuestFunctions(addresses, FreeFromThree);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(*plan, (std::vector<GuestPciFunction>{{3, 1}, {4, 0}, {3, 0}, {3, 3}}));
}

TEST(PlanGuestFunctionsTest, RenumbersFromZeroWithoutHostFunctionZero) {
  // A guest scans a slot only if function 0 exists: host .2 and .5 become .0 and .1.
  const std::vector<std::string> addresses = {"0000:3b:00.5", "0000:3b:00.2"};
  absl::StatusOr<std::vector<GuestPciFunction>> plan = PlanGuestFunctions(addresses, FreeFromThree);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(*plan, (std::vector<GuestPciFunction>{{3, 1}, {3, 0}}));
}

TEST(PlanGuestFunctionsTest, SkipsTakenSlotsAndFailsWhenTheBusIsFull) {
  absl::StatusOr<std::vector<GuestPciFunction>> plan =
      PlanGuestFunctions(std::vector<std::string>{"0000:01:00.0", "0000:02:00.0"},
                         [](uint8_t slot) { return slot == 7 || slot == 30; });
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(*plan, (std::vector<GuestPciFunction>{{7, 0}, {30, 0}}));

  plan = PlanGuestFunctions(std::vector<std::string>{"0000:01:00.0", "0000:02:00.0"},
                            [](uint8_t slot) { return slot == 31; });
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(plan.status().message()).find("0000:02:00"), std::string::npos);
}

}  // namespace
}  // namespace minivmm
