#include "vmm/core/bus.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

using ::testing::AllOf;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

struct Access {
  bool is_write;
  uint64_t offset;
  std::vector<uint8_t> data;
  bool operator==(const Access&) const = default;
};

// Records every access; reads return offset + i in byte i, so a test can tell which offset the
// device was given from the bytes alone.
class RecordingDevice : public BusDevice {
 public:
  explicit RecordingDevice(std::string name) : name_(std::move(name)) {}
  std::string_view Name() const override { return name_; }
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(offset + i);
    accesses_.push_back({false, offset, std::vector<uint8_t>(data.begin(), data.end())});
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    accesses_.push_back({true, offset, std::vector<uint8_t>(data.begin(), data.end())});
  }
  const std::vector<Access>& accesses() const { return accesses_; }

 private:
  std::string name_;
  std::vector<Access> accesses_;
};

// A device that implements no registers: it leaves read data as the bus handed it over.
class SilentDevice : public BusDevice {
 public:
  std::string_view Name() const override { return "silent"; }
  void Read(uint64_t, std::span<uint8_t>) override {}
  void Write(uint64_t, std::span<const uint8_t>) override {}
};

std::string Message(const absl::Status& status) { return std::string(status.message()); }

class BusTest : public ::testing::Test {
 protected:
  // Registers a RecordingDevice and keeps the registration alive for the whole test.
  std::shared_ptr<RecordingDevice> Add(uint64_t base, uint64_t length, std::string name) {
    auto device = std::make_shared<RecordingDevice>(std::move(name));
    absl::StatusOr<BusRegistration> registration = bus_.Register(base, length, device);
    EXPECT_TRUE(registration.ok()) << registration.status();
    if (registration.ok()) registrations_.push_back(std::move(*registration));
    return device;
  }

  absl::Status TryRegister(uint64_t base, uint64_t length, std::string name) {
    return bus_.Register(base, length, std::make_shared<RecordingDevice>(std::move(name))).status();
  }

  bool ReadByte(uint64_t address, uint8_t* value) {
    return bus_.Read(address, std::span(value, 1));
  }

  Bus bus_{"pio"};
  std::vector<BusRegistration> registrations_;
};

TEST_F(BusTest, AcceptsAdjacentRanges) {
  Add(0x100, 0x10, "left");
  Add(0x120, 0x10, "right");
  EXPECT_TRUE(TryRegister(0x110, 0x10, "middle").ok());
  EXPECT_TRUE(TryRegister(0x130, 1, "after").ok());
  EXPECT_TRUE(TryRegister(0xff, 1, "before").ok());
}

TEST_F(BusTest, RejectsRangeOverlappingThePreviousRangeNamingBothDevices) {
  Add(0x100, 0x10, "left");
  Add(0x120, 0x10, "right");
  const absl::Status status = TryRegister(0x10f, 1, "newcomer");
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Message(status), AllOf(HasSubstr("pio"), HasSubstr("newcomer"), HasSubstr("left")));
}

TEST_F(BusTest, RejectsRangeOverlappingTheNextRangeNamingBothDevices) {
  Add(0x100, 0x10, "left");
  Add(0x120, 0x10, "right");
  const absl::Status status = TryRegister(0x118, 0x9, "newcomer");
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Message(status), AllOf(HasSubstr("newcomer"), HasSubstr("right")));
}

TEST_F(BusTest, RejectsRangeWithTheSameBase) {
  Add(0x100, 0x10, "first");
  const absl::Status status = TryRegister(0x100, 1, "second");
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Message(status), AllOf(HasSubstr("first"), HasSubstr("second")));
}

TEST_F(BusTest, RejectsRangeThatContainsAnExistingRange) {
  Add(0x100, 0x10, "inner");
  const absl::Status status = TryRegister(0x80, 0x100, "outer");
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Message(status), AllOf(HasSubstr("inner"), HasSubstr("outer")));
}

TEST_F(BusTest, RejectsRangeInsideAnExistingRange) {
  Add(0x100, 0x100, "outer");
  const absl::Status status = TryRegister(0x180, 4, "inner");
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Message(status), AllOf(HasSubstr("inner"), HasSubstr("outer")));
}

TEST_F(BusTest, RejectsEmptyRange) {
  const absl::Status status = TryRegister(0x100, 0, "empty");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("empty"));
}

TEST_F(BusTest, RejectsRangeThatWrapsPastTheTopOfTheAddressSpace) {
  const absl::Status status = TryRegister(kMax - 1, 4, "wrapper");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("wrapper"));
}

TEST_F(BusTest, RejectsNullDevice) {
  EXPECT_EQ(bus_.Register(0x100, 1, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BusTest, FailedRegistrationLeavesTheRangeUnmapped) {
  Add(0x100, 0x10, "left");
  ASSERT_FALSE(TryRegister(0x108, 0x10, "overlapping").ok());
  uint8_t value = 0;
  EXPECT_FALSE(ReadByte(0x110, &value)) << "the rejected range's tail must not be mapped";
  EXPECT_EQ(value, 0xff);
}

TEST_F(BusTest, ReadPassesTheOffsetFromTheDeviceBase) {
  auto device = Add(0x3f8, 8, "uart");
  std::vector<uint8_t> data(2, 0);
  EXPECT_TRUE(bus_.Read(0x3fb, data));
  EXPECT_THAT(data, ElementsAre(3, 4));
  EXPECT_THAT(device->accesses(), ElementsAre(Access{false, 3, {3, 4}}));
}

TEST_F(BusTest, WritePassesTheOffsetAndBytesToTheDevice) {
  auto device = Add(0x3f8, 8, "uart");
  const std::vector<uint8_t> data = {0xab, 0xcd};
  EXPECT_TRUE(bus_.Write(0x3fe, data));
  EXPECT_THAT(device->accesses(), ElementsAre(Access{true, 6, {0xab, 0xcd}}));
}

TEST_F(BusTest, DispatchesToTheDeviceCoveringTheAddress) {
  auto low = Add(0x100, 0x10, "low");
  auto high = Add(0x110, 0x10, "high");
  uint8_t value = 0;
  EXPECT_TRUE(ReadByte(0x10f, &value));
  EXPECT_TRUE(ReadByte(0x110, &value));
  EXPECT_THAT(low->accesses(), ElementsAre(Access{false, 0xf, {0xf}}));
  EXPECT_THAT(high->accesses(), ElementsAre(Access{false, 0, {0}}));
}

TEST_F(BusTest, ReadOfUnmappedAddressReturnsAllOnesAndFalse) {
  Add(0x100, 0x10, "device");
  std::vector<uint8_t> data(4, 0);
  EXPECT_FALSE(bus_.Read(0x200, data));
  EXPECT_THAT(data, Each(0xff));
  EXPECT_FALSE(bus_.Read(0x0, data));
  EXPECT_THAT(data, Each(0xff));
}

TEST_F(BusTest, ReadPrefillsAllOnesForADeviceThatLeavesDataAlone) {
  auto registration = bus_.Register(0x60, 1, std::make_shared<SilentDevice>());
  ASSERT_TRUE(registration.ok());
  uint8_t value = 0;
  EXPECT_TRUE(ReadByte(0x60, &value));
  EXPECT_EQ(value, 0xff);
}

TEST_F(BusTest, WriteToUnmappedAddressIsDroppedAndReturnsFalse) {
  auto device = Add(0x100, 0x10, "device");
  const std::vector<uint8_t> data = {1, 2};
  EXPECT_FALSE(bus_.Write(0x110, data));
  EXPECT_FALSE(bus_.Write(0xfe, data));
  EXPECT_THAT(device->accesses(), IsEmpty());
}

TEST_F(BusTest, AccessStraddlingTheEndOfADeviceIsUnmapped) {
  auto device = Add(0x100, 4, "device");
  std::vector<uint8_t> data(4, 0);
  EXPECT_FALSE(bus_.Read(0x102, data));
  EXPECT_THAT(data, Each(0xff));
  EXPECT_FALSE(bus_.Write(0x103, std::vector<uint8_t>{1, 2}));
  EXPECT_THAT(device->accesses(), IsEmpty());
}

TEST_F(BusTest, AccessEndingExactlyAtTheDeviceEndIsMapped) {
  auto device = Add(0x100, 4, "device");
  std::vector<uint8_t> data(2, 0);
  EXPECT_TRUE(bus_.Read(0x102, data));
  EXPECT_THAT(device->accesses(), ElementsAre(Access{false, 2, {2, 3}}));
}

TEST_F(BusTest, AccessStraddlingTwoAdjacentDevicesIsUnmapped) {
  auto low = Add(0x100, 4, "low");
  auto high = Add(0x104, 4, "high");
  std::vector<uint8_t> data(2, 0);
  EXPECT_FALSE(bus_.Read(0x103, data));
  EXPECT_THAT(data, Each(0xff));
  EXPECT_THAT(low->accesses(), IsEmpty());
  EXPECT_THAT(high->accesses(), IsEmpty());
}

TEST_F(BusTest, AccessRunningPastTheTopOfTheAddressSpaceIsUnmapped) {
  auto device = Add(kMax - 0xf, 0xf, "top");  // [2^64 - 16, 2^64 - 1)
  std::vector<uint8_t> data(4, 0);
  EXPECT_FALSE(bus_.Read(kMax - 1, data));
  EXPECT_FALSE(bus_.Read(kMax, data));
  EXPECT_THAT(data, Each(0xff));
  EXPECT_THAT(device->accesses(), IsEmpty());
  EXPECT_TRUE(bus_.Read(kMax - 4, data));
  EXPECT_THAT(device->accesses(), ElementsAre(Access{false, 0xb, {0xb, 0xc, 0xd, 0xe}}));
}

TEST_F(BusTest, DestroyingTheRegistrationUnmapsTheRange) {
  auto device = std::make_shared<RecordingDevice>("device");
  {
    absl::StatusOr<BusRegistration> registration = bus_.Register(0x100, 4, device);
    ASSERT_TRUE(registration.ok());
  }
  uint8_t value = 0;
  EXPECT_FALSE(ReadByte(0x100, &value));
  EXPECT_THAT(device->accesses(), IsEmpty());
  EXPECT_TRUE(TryRegister(0x100, 4, "replacement").ok()) << "the range must be free again";
}

TEST_F(BusTest, MovedFromRegistrationDoesNotUnmapTheRange) {
  auto device = std::make_shared<RecordingDevice>("device");
  std::optional<BusRegistration> kept;
  {
    absl::StatusOr<BusRegistration> registration = bus_.Register(0x100, 4, device);
    ASSERT_TRUE(registration.ok());
    kept.emplace(std::move(*registration));
  }
  uint8_t value = 0;
  EXPECT_TRUE(ReadByte(0x100, &value));
  kept.reset();
  EXPECT_FALSE(ReadByte(0x100, &value));
}

TEST_F(BusTest, MoveAssignmentUnmapsTheOverwrittenRegistration) {
  auto first = std::make_shared<RecordingDevice>("first");
  auto second = std::make_shared<RecordingDevice>("second");
  absl::StatusOr<BusRegistration> a = bus_.Register(0x100, 4, first);
  absl::StatusOr<BusRegistration> b = bus_.Register(0x200, 4, second);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());

  *a = std::move(*b);
  uint8_t value = 0;
  EXPECT_FALSE(ReadByte(0x100, &value)) << "the overwritten registration's range stays mapped";
  EXPECT_TRUE(ReadByte(0x200, &value)) << "the moved registration's range was unmapped";

  *a = BusRegistration();
  EXPECT_FALSE(ReadByte(0x200, &value)) << "move-assigning an empty handle must unmap";
}

TEST_F(BusTest, SelfMoveAssignmentKeepsTheRangeMapped) {
  absl::StatusOr<BusRegistration> a =
      bus_.Register(0x100, 4, std::make_shared<RecordingDevice>("device"));
  ASSERT_TRUE(a.ok());
  BusRegistration& ref = *a;
  *a = std::move(ref);
  uint8_t value = 0;
  EXPECT_TRUE(ReadByte(0x100, &value));
}

// A device whose Read signals that it was entered and then waits until the test releases it;
// its destructor records that it ran.
class BlockingDevice : public BusDevice {
 public:
  explicit BlockingDevice(std::atomic<bool>* destroyed) : destroyed_(destroyed) {}
  ~BlockingDevice() override { destroyed_->store(true); }
  std::string_view Name() const override { return "blocking"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    entered_.Notify();
    release_.WaitForNotification();
    // Touches the device's own state after the wait: a use-after-free if the device was freed.
    last_offset_ = offset;
    std::fill(data.begin(), data.end(), 0x5a);
  }
  void Write(uint64_t, std::span<const uint8_t>) override {}

  absl::Notification& entered() { return entered_; }
  absl::Notification& release() { return release_; }

 private:
  std::atomic<bool>* destroyed_;
  absl::Notification entered_;
  absl::Notification release_;
  uint64_t last_offset_ = 0;
};

TEST_F(BusTest, DeviceRemovedDuringAReadStaysAliveUntilTheReadReturns) {
  std::atomic<bool> destroyed{false};
  auto device = std::make_shared<BlockingDevice>(&destroyed);
  BlockingDevice* raw = device.get();
  std::optional<BusRegistration> registration;
  {
    absl::StatusOr<BusRegistration> r = bus_.Register(0x100, 4, std::move(device));
    ASSERT_TRUE(r.ok());
    registration.emplace(std::move(*r));
  }

  uint8_t value = 0;
  bool mapped = false;
  std::thread vcpu([&] { mapped = bus_.Read(0x102, std::span(&value, 1)); });
  raw->entered().WaitForNotification();

  // Unregistering must neither wait for the handler nor free the device under it.
  registration.reset();
  EXPECT_FALSE(destroyed.load()) << "device freed while a vCPU is inside its handler";
  uint8_t other = 0;
  EXPECT_FALSE(ReadByte(0x102, &other)) << "new accesses must no longer reach the device";

  raw->release().Notify();
  vcpu.join();
  EXPECT_TRUE(mapped);
  EXPECT_EQ(value, 0x5a);
  EXPECT_TRUE(destroyed.load()) << "the last reference (the dispatch) should free the device";
}

}  // namespace
}  // namespace minivmm
