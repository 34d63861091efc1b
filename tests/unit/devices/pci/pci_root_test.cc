#include "devices/pci/pci_root.h"

#include <linux/pci_regs.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "devices/pci/pci_config_io.h"
#include "devices/pci/pci_ecam.h"
#include "devices/pci/pci_host_bridge.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/core/bus.h"

namespace minivmm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// What the fake function saw of one config access.
struct Access {
  bool write;
  uint32_t offset;
  size_t size;
  std::vector<uint8_t> data;  // the bytes written; empty for reads

  bool operator==(const Access&) const = default;
};

Access ReadOf(uint32_t offset, size_t size) { return {false, offset, size, {}}; }
Access WriteOf(uint32_t offset, std::vector<uint8_t> data) {
  const size_t size = data.size();
  return {true, offset, size, std::move(data)};
}

// Every config byte reads as a value derived from its offset, so a read that reaches the wrong
// register, or is shifted within the dword, shows up as a wrong value.
uint8_t PatternByte(uint32_t offset) { return static_cast<uint8_t>(offset ^ (offset >> 8) ^ 0x5a); }

uint32_t Pattern(uint32_t offset, size_t size) {
  uint32_t value = 0;
  for (size_t i = 0; i < size; ++i) value |= uint32_t{PatternByte(offset + i)} << (8 * i);
  return value;
}

class RecordingFunction : public PciFunction {
 public:
  std::string_view Name() const override { return "recording-function"; }
  void ReadConfig(uint32_t offset, std::span<uint8_t> data) override {
    accesses.push_back(ReadOf(offset, data.size()));
    for (size_t i = 0; i < data.size(); ++i) data[i] = PatternByte(offset + i);
  }
  void WriteConfig(uint32_t offset, std::span<const uint8_t> data) override {
    accesses.push_back(WriteOf(offset, {data.begin(), data.end()}));
  }

  std::vector<Access> accesses;
};

std::vector<uint8_t> LittleEndian(uint32_t value, size_t size) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  return bytes;
}

uint64_t FromLittleEndian(std::span<const uint8_t> bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes.size(); ++i) value |= uint64_t{bytes[i]} << (8 * i);
  return value;
}

// CONFIG_ADDRESS (PCI Local Bus 3.0 §3.2.2.3.2): enable bit 31, bus 23:16, device 15:11,
// function 10:8, register 7:2.
constexpr uint32_t kConfigEnable = 1u << 31;
constexpr uint32_t ConfigAddress(uint8_t bus, uint8_t device, uint8_t function, uint8_t reg) {
  return kConfigEnable | uint32_t{bus} << 16 | uint32_t{device} << 11 | uint32_t{function} << 8 |
         reg;
}

// ECAM (PCI Express Base 4.0 §7.2.2): bus 27:20, device 19:15, function 14:12, register 11:0.
constexpr uint64_t EcamOffset(uint8_t bus, uint8_t device, uint8_t function, uint32_t reg) {
  return uint64_t{bus} << 20 | uint64_t{device} << 15 | uint64_t{function} << 12 | reg;
}

// Offsets within PciConfigIo's 8-port range.
constexpr uint64_t kAddressPort = 0;  // 0xCF8
constexpr uint64_t kDataPort = 4;     // 0xCFC..0xCFF

constexpr uint8_t kFakeDevice = 3;
constexpr uint8_t kFakeFunction = 2;

class PciRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(root_.AddFunction(0, 0, std::make_shared<PciHostBridge>()).ok());
    ASSERT_TRUE(root_.AddFunction(kFakeDevice, kFakeFunction, fake_).ok());
  }

  void SetAddress(uint32_t address) { io_.Write(kAddressPort, LittleEndian(address, 4)); }
  uint32_t ReadAddress() {
    std::array<uint8_t, 4> bytes;
    bytes.fill(0xff);
    io_.Read(kAddressPort, bytes);
    return static_cast<uint32_t>(FromLittleEndian(bytes));
  }
  // An IN of `size` bytes from port 0xCFC + port_offset.
  uint64_t InData(uint64_t port_offset, size_t size) {
    std::vector<uint8_t> bytes(size, 0);
    io_.Read(kDataPort + port_offset, std::span(bytes));
    return FromLittleEndian(bytes);
  }
  void OutData(uint64_t port_offset, size_t size, uint32_t value) {
    io_.Write(kDataPort + port_offset, LittleEndian(value, size));
  }
  uint64_t ConfigIoRead(uint8_t bus, uint8_t device, uint8_t function, uint8_t reg, size_t size) {
    SetAddress(ConfigAddress(bus, device, function, reg & 0xfc));
    return InData(reg & 3, size);
  }

  uint64_t EcamRead(uint64_t offset, size_t size) {
    std::vector<uint8_t> bytes(size, 0);
    ecam_.Read(offset, std::span(bytes));
    return FromLittleEndian(bytes);
  }
  void EcamWrite(uint64_t offset, size_t size, uint32_t value) {
    ecam_.Write(offset, LittleEndian(value, size));
  }

  PciRoot root_;
  PciConfigIo io_{&root_};
  PciEcam ecam_{&root_};
  std::shared_ptr<RecordingFunction> fake_ = std::make_shared<RecordingFunction>();
};

TEST_F(PciRootTest, EmptySlotReadsAllOnesThroughConfigIo) {
  EXPECT_EQ(ConfigIoRead(0, 5, 0, PCI_VENDOR_ID, 2), 0xffffu);
  EXPECT_EQ(ConfigIoRead(0, 5, 0, PCI_VENDOR_ID, 4), 0xffffffffu);
  EXPECT_EQ(ConfigIoRead(0, 31, 7, PCI_CLASS_REVISION, 4), 0xffffffffu);
  EXPECT_EQ(ConfigIoRead(0, 5, 0, PCI_HEADER_TYPE, 1), 0xffu);
}

TEST_F(PciRootTest, EmptySlotReadsAllOnesThroughEcam) {
  EXPECT_EQ(EcamRead(EcamOffset(0, 5, 0, PCI_VENDOR_ID), 2), 0xffffu);
  EXPECT_EQ(EcamRead(EcamOffset(0, 5, 0, PCI_VENDOR_ID), 4), 0xffffffffu);
  EXPECT_EQ(EcamRead(EcamOffset(0, 31, 7, 0x100), 4), 0xffffffffu);
}

TEST_F(PciRootTest, OtherFunctionsOfAPopulatedSlotReadAllOnes) {
  EXPECT_EQ(ConfigIoRead(0, kFakeDevice, 0, PCI_VENDOR_ID, 2), 0xffffu);
  EXPECT_EQ(EcamRead(EcamOffset(0, kFakeDevice, kFakeFunction + 1, PCI_VENDOR_ID), 2), 0xffffu);
  EXPECT_EQ(EcamRead(EcamOffset(0, kFakeDevice + 1, kFakeFunction, PCI_VENDOR_ID), 2), 0xffffu);
  EXPECT_THAT(fake_->accesses, IsEmpty());
}

TEST_F(PciRootTest, HostBridgeIdentifiesAsQemuPcieHostBridgeThroughBothMechanisms) {
  EXPECT_EQ(ConfigIoRead(0, 0, 0, PCI_VENDOR_ID, 2), 0x1b36u);
  EXPECT_EQ(ConfigIoRead(0, 0, 0, PCI_DEVICE_ID, 2), 0x0008u);
  EXPECT_EQ(ConfigIoRead(0, 0, 0, PCI_VENDOR_ID, 4), 0x00081b36u);
  EXPECT_EQ(ConfigIoRead(0, 0, 0, PCI_CLASS_REVISION, 4) >> 8, 0x060000u);

  EXPECT_EQ(EcamRead(EcamOffset(0, 0, 0, PCI_VENDOR_ID), 2), 0x1b36u);
  EXPECT_EQ(EcamRead(EcamOffset(0, 0, 0, PCI_DEVICE_ID), 2), 0x0008u);
  EXPECT_EQ(EcamRead(EcamOffset(0, 0, 0, PCI_CLASS_REVISION), 4) >> 8, 0x060000u);
  EXPECT_EQ(EcamRead(EcamOffset(0, 0, 0, PCI_CLASS_DEVICE), 2), 0x0600u);
}

TEST_F(PciRootTest, ConfigIoDwordReadReachesTheAddressedRegister) {
  SetAddress(ConfigAddress(0, kFakeDevice, kFakeFunction, 0x40));
  EXPECT_EQ(InData(0, 4), Pattern(0x40, 4));
  EXPECT_THAT(fake_->accesses, ElementsAre(ReadOf(0x40, 4)));
}

TEST_F(PciRootTest, ConfigIoWordAndByteReadsAddTheDataPortOffset) {
  SetAddress(ConfigAddress(0, kFakeDevice, kFakeFunction, 0x40));
  EXPECT_EQ(InData(0, 2), Pattern(0x40, 2));  // 0xCFC
  EXPECT_EQ(InData(2, 2), Pattern(0x42, 2));  // 0xCFE
  EXPECT_EQ(InData(0, 1), Pattern(0x40, 1));  // 0xCFC
  EXPECT_EQ(InData(1, 1), Pattern(0x41, 1));  // 0xCFD
  EXPECT_EQ(InData(2, 1), Pattern(0x42, 1));  // 0xCFE
  EXPECT_EQ(InData(3, 1), Pattern(0x43, 1));  // 0xCFF
  EXPECT_THAT(fake_->accesses, ElementsAre(ReadOf(0x40, 2), ReadOf(0x42, 2), ReadOf(0x40, 1),
                                           ReadOf(0x41, 1), ReadOf(0x42, 1), ReadOf(0x43, 1)));
}

TEST_F(PciRootTest, ConfigIoWritesReachTheFunctionWithOffsetSizeAndBytes) {
  SetAddress(ConfigAddress(0, kFakeDevice, kFakeFunction, 0x10));
  OutData(0, 4, 0xfebc0000);
  OutData(2, 2, 0xbeef);
  OutData(1, 1, 0x7a);
  OutData(3, 1, 0x01);
  EXPECT_THAT(fake_->accesses,
              ElementsAre(WriteOf(0x10, {0x00, 0x00, 0xbc, 0xfe}), WriteOf(0x12, {0xef, 0xbe}),
                          WriteOf(0x11, {0x7a}), WriteOf(0x13, {0x01})));
}

TEST_F(PciRootTest, ConfigIoReachesTheLastDeviceAndFunctionNumbers) {
  auto last = std::make_shared<RecordingFunction>();
  ASSERT_TRUE(root_.AddFunction(31, 7, last).ok());
  SetAddress(ConfigAddress(0, 31, 7, 0xfc));
  EXPECT_EQ(InData(0, 4), Pattern(0xfc, 4));
  EXPECT_THAT(last->accesses, ElementsAre(ReadOf(0xfc, 4)));
  EXPECT_THAT(fake_->accesses, IsEmpty());
}

TEST_F(PciRootTest, ConfigAddressReadsBackWithTheLowTwoBitsCleared) {
  SetAddress(ConfigAddress(0, kFakeDevice, kFakeFunction, 0x43));
  EXPECT_EQ(ReadAddress(), ConfigAddress(0, kFakeDevice, kFakeFunction, 0x40));
  SetAddress(0x80fffffe);
  EXPECT_EQ(ReadAddress(), 0x80fffffcu);
  SetAddress(0);
  EXPECT_EQ(ReadAddress(), 0u);
}

TEST_F(PciRootTest, ConfigAddressLowTwoBitsDoNotSelectTheByte) {
  // The byte within the dword comes only from the CONFIG_DATA port used (§3.2.2.3.2).
  SetAddress(ConfigAddress(0, kFakeDevice, kFakeFunction, 0x43));
  EXPECT_EQ(InData(0, 4), Pattern(0x40, 4));
  EXPECT_THAT(fake_->accesses, ElementsAre(ReadOf(0x40, 4)));
}

TEST_F(PciRootTest, OnlyDwordAccessesReachConfigAddress) {
  // Linux's pci_check_type1 writes a byte to 0xCFB before probing CONFIG_ADDRESS with a dword;
  // only the dword access is CONFIG_ADDRESS (PCI Local Bus 3.0 §3.2.2.3.2).
  SetAddress(ConfigAddress(0, kFakeDevice, kFakeFunction, 0x40));
  io_.Write(3, LittleEndian(0x01, 1));
  io_.Write(0, LittleEndian(0, 2));
  EXPECT_EQ(ReadAddress(), ConfigAddress(0, kFakeDevice, kFakeFunction, 0x40));
  std::array<uint8_t, 2> word = {0, 0};
  io_.Read(0, word);
  EXPECT_THAT(word, ElementsAre(0xff, 0xff));
  EXPECT_THAT(fake_->accesses, IsEmpty());
}

TEST_F(PciRootTest, ClearEnableBitMakesDataReadAllOnesAndDropsWrites) {
  SetAddress(ConfigAddress(0, kFakeDevice, kFakeFunction, 0x40) & ~kConfigEnable);
  EXPECT_EQ(InData(0, 4), 0xffffffffu);
  EXPECT_EQ(InData(2, 2), 0xffffu);
  EXPECT_EQ(InData(3, 1), 0xffu);
  OutData(0, 4, 0x12345678);
  OutData(1, 1, 0x12);
  EXPECT_THAT(fake_->accesses, IsEmpty());
  EXPECT_EQ(ConfigIoRead(0, 0, 0, PCI_VENDOR_ID, 2), 0x1b36u) << "setting the bit again works";
}

TEST_F(PciRootTest, NonzeroBusReadsAllOnesAndDropsWrites) {
  EXPECT_EQ(ConfigIoRead(1, kFakeDevice, kFakeFunction, 0, 4), 0xffffffffu);
  EXPECT_EQ(ConfigIoRead(0xff, 0, 0, PCI_VENDOR_ID, 2), 0xffffu);
  OutData(0, 4, 0x12345678);
  EXPECT_EQ(EcamRead(EcamOffset(1, kFakeDevice, kFakeFunction, 0), 4), 0xffffffffu);
  EXPECT_EQ(EcamRead(EcamOffset(1, 0, 0, PCI_VENDOR_ID), 2), 0xffffu);
  EcamWrite(EcamOffset(1, kFakeDevice, kFakeFunction, 0x40), 4, 0x12345678);
  EXPECT_THAT(fake_->accesses, IsEmpty());
}

TEST_F(PciRootTest, EcamOffsetSelectsBusDeviceFunctionAndRegister) {
  const uint64_t base = EcamOffset(0, kFakeDevice, kFakeFunction, 0);
  EXPECT_EQ(EcamRead(base + 0x10, 4), Pattern(0x10, 4));
  EXPECT_EQ(EcamRead(base + 0x12, 2), Pattern(0x12, 2));
  EXPECT_EQ(EcamRead(base + 0x13, 1), Pattern(0x13, 1));
  EcamWrite(base + 0x04, 2, 0x0406);
  EcamWrite(base + 0x3c, 1, 0x0b);
  EcamWrite(base + 0x18, 4, 0xdeadbeef);
  EXPECT_THAT(fake_->accesses, ElementsAre(ReadOf(0x10, 4), ReadOf(0x12, 2), ReadOf(0x13, 1),
                                           WriteOf(0x04, {0x06, 0x04}), WriteOf(0x3c, {0x0b}),
                                           WriteOf(0x18, {0xef, 0xbe, 0xad, 0xde})));
}

TEST_F(PciRootTest, EcamReachesExtendedConfigSpace) {
  const uint64_t base = EcamOffset(0, kFakeDevice, kFakeFunction, 0);
  EXPECT_EQ(EcamRead(base + 0x100, 4), Pattern(0x100, 4));
  EXPECT_EQ(EcamRead(base + 0xffc, 4), Pattern(0xffc, 4));
  EXPECT_EQ(EcamRead(base + 0xffe, 2), Pattern(0xffe, 2));
  EXPECT_EQ(EcamRead(base + 0xfff, 1), Pattern(0xfff, 1));
  EcamWrite(base + 0x104, 4, 0x00010001);
  EXPECT_THAT(fake_->accesses, ElementsAre(ReadOf(0x100, 4), ReadOf(0xffc, 4), ReadOf(0xffe, 2),
                                           ReadOf(0xfff, 1), WriteOf(0x104, {0x01, 0, 0x01, 0})));
}

TEST_F(PciRootTest, EcamReachesTheLastDeviceAndFunctionNumbers) {
  auto last = std::make_shared<RecordingFunction>();
  ASSERT_TRUE(root_.AddFunction(31, 7, last).ok());
  EXPECT_EQ(EcamRead(EcamOffset(0, 31, 7, 0x800), 4), Pattern(0x800, 4));
  EXPECT_THAT(last->accesses, ElementsAre(ReadOf(0x800, 4)));
  EXPECT_THAT(fake_->accesses, IsEmpty());
}

TEST_F(PciRootTest, MisalignedEcamAccessesAreIgnored) {
  const uint64_t base = EcamOffset(0, kFakeDevice, kFakeFunction, 0);
  EXPECT_EQ(EcamRead(base + 0x41, 2), 0xffffu);
  EXPECT_EQ(EcamRead(base + 0x42, 4), 0xffffffffu);
  EXPECT_EQ(EcamRead(base + 0x103, 4), 0xffffffffu);
  EcamWrite(base + 0x41, 2, 0x1234);
  EcamWrite(base + 0x42, 4, 0x12345678);
  EXPECT_THAT(fake_->accesses, IsEmpty());
}

TEST_F(PciRootTest, EcamAccessStraddlingIntoTheNextFunctionIsIgnored) {
  auto next = std::make_shared<RecordingFunction>();
  ASSERT_TRUE(root_.AddFunction(kFakeDevice, kFakeFunction + 1, next).ok());
  const uint64_t end = EcamOffset(0, kFakeDevice, kFakeFunction + 1, 0);
  EXPECT_EQ(EcamRead(end - 2, 4), 0xffffffffu);
  EXPECT_EQ(EcamRead(end - 1, 2), 0xffffu);
  EcamWrite(end - 2, 4, 0x12345678);
  EXPECT_THAT(fake_->accesses, IsEmpty());
  EXPECT_THAT(next->accesses, IsEmpty());
}

TEST_F(PciRootTest, EightByteAndOddSizedAccessesAreIgnored) {
  const uint64_t base = EcamOffset(0, kFakeDevice, kFakeFunction, 0);
  EXPECT_EQ(EcamRead(base + 0x10, 8), ~uint64_t{0});
  EXPECT_EQ(EcamRead(base + 0x10, 3), 0xffffffu);
  ecam_.Write(base + 0x10, std::vector<uint8_t>(8, 0));
  ecam_.Write(base + 0x10, std::vector<uint8_t>(3, 0));
  ecam_.Write(base + 0x10, std::span<const uint8_t>());
  SetAddress(ConfigAddress(0, kFakeDevice, kFakeFunction, 0x10));
  EXPECT_EQ(InData(0, 8), ~uint64_t{0});
  OutData(0, 3, 0);
  EXPECT_THAT(fake_->accesses, IsEmpty());
}

TEST_F(PciRootTest, MisalignedAndStraddlingConfigDataAccessesAreIgnored) {
  SetAddress(ConfigAddress(0, kFakeDevice, kFakeFunction, 0x40));
  EXPECT_EQ(InData(1, 2), 0xffffu);      // 0xCFD: word at register 0x41
  EXPECT_EQ(InData(3, 2), 0xffffu);      // 0xCFF: word straddling into the next dword
  EXPECT_EQ(InData(2, 4), 0xffffffffu);  // 0xCFE: dword straddling into the next dword
  OutData(1, 2, 0x1234);
  OutData(3, 2, 0x1234);
  OutData(2, 4, 0x12345678);
  EXPECT_THAT(fake_->accesses, IsEmpty());
}

TEST_F(PciRootTest, RootIgnoresAccessesPastTheConfigSpace) {
  std::array<uint8_t, 4> bytes = {0, 0, 0, 0};
  root_.ReadConfig(0, kFakeDevice, kFakeFunction, kPciConfigSpaceSize, bytes);
  EXPECT_THAT(bytes, ElementsAre(0xff, 0xff, 0xff, 0xff));
  root_.ReadConfig(0, kFakeDevice, kFakeFunction, 0xffffffff, std::span(bytes.data(), 1));
  EXPECT_EQ(bytes[0], 0xff);
  root_.WriteConfig(0, kFakeDevice, kFakeFunction, kPciConfigSpaceSize, bytes);
  EXPECT_THAT(fake_->accesses, IsEmpty());
}

TEST_F(PciRootTest, RootIgnoresDeviceAndFunctionNumbersOutOfRange) {
  std::array<uint8_t, 2> bytes = {0, 0};
  root_.ReadConfig(0, 32, 0, PCI_VENDOR_ID, bytes);
  EXPECT_THAT(bytes, ElementsAre(0xff, 0xff));
  bytes = {0, 0};
  root_.ReadConfig(0, kFakeDevice, 8 + kFakeFunction, PCI_VENDOR_ID, bytes);
  EXPECT_THAT(bytes, ElementsAre(0xff, 0xff));
  root_.WriteConfig(0, kFakeDevice, 8 + kFakeFunction, PCI_VENDOR_ID, bytes);
  EXPECT_THAT(fake_->accesses, IsEmpty());
}

TEST_F(PciRootTest, ConfigIoWorksThroughThePortBus) {
  Bus pio("pio");
  auto io = std::make_shared<PciConfigIo>(&root_);
  absl::StatusOr<BusRegistration> registration =
      pio.Register(PciConfigIo::kBasePort, PciConfigIo::kPortSpan, io);
  ASSERT_TRUE(registration.ok()) << registration.status();
  const std::vector<uint8_t> address = LittleEndian(ConfigAddress(0, 0, 0, PCI_VENDOR_ID), 4);
  ASSERT_TRUE(pio.Write(0xcf8, address));
  std::array<uint8_t, 4> dword{};
  ASSERT_TRUE(pio.Read(0xcfc, dword));
  EXPECT_EQ(FromLittleEndian(dword), 0x00081b36u);
  std::array<uint8_t, 2> word{};
  ASSERT_TRUE(pio.Read(0xcfe, word));
  EXPECT_EQ(FromLittleEndian(word), 0x0008u);
  EXPECT_FALSE(pio.Read(0xcfe, dword)) << "a dword at 0xCFE runs past the data port";
}

TEST_F(PciRootTest, AddFunctionRejectsAddressesOutOfRange) {
  absl::Status status = root_.AddFunction(32, 0, std::make_shared<RecordingFunction>());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("00:20.0"));
  status = root_.AddFunction(4, 8, std::make_shared<RecordingFunction>());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("00:04.8"));
  status = root_.AddFunction(0xff, 0xff, std::make_shared<RecordingFunction>());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

TEST_F(PciRootTest, AddFunctionRejectsATakenAddressNamingItsOccupant) {
  absl::Status status = root_.AddFunction(0, 0, std::make_shared<RecordingFunction>());
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("00:00.0"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("pci-host-bridge"));

  status = root_.AddFunction(kFakeDevice, kFakeFunction, std::make_shared<PciHostBridge>());
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("00:03.2"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("recording-function"));

  EXPECT_EQ(ConfigIoRead(0, 0, 0, PCI_VENDOR_ID, 2), 0x1b36u) << "the occupant stays";
  EXPECT_EQ(EcamRead(EcamOffset(0, kFakeDevice, kFakeFunction, 0), 4), Pattern(0, 4));
}

TEST_F(PciRootTest, FreeSlotReturnsTheLowestSlotWithoutFunctionZero) {
  absl::StatusOr<uint8_t> slot = root_.FreeSlot();
  ASSERT_TRUE(slot.ok()) << slot.status();
  EXPECT_EQ(*slot, 1);
  ASSERT_TRUE(root_.AddFunction(1, 0, std::make_shared<RecordingFunction>()).ok());
  ASSERT_TRUE(root_.AddFunction(2, 0, std::make_shared<RecordingFunction>()).ok());
  ASSERT_TRUE(root_.AddFunction(5, 0, std::make_shared<RecordingFunction>()).ok());
  slot = root_.FreeSlot();
  ASSERT_TRUE(slot.ok()) << slot.status();
  EXPECT_EQ(*slot, kFakeDevice) << "slot 3 has function 2 only";
  ASSERT_TRUE(root_.AddFunction(kFakeDevice, 0, std::make_shared<RecordingFunction>()).ok());
  slot = root_.FreeSlot();
  ASSERT_TRUE(slot.ok()) << slot.status();
  EXPECT_EQ(*slot, 4);
}

TEST_F(PciRootTest, FreeSlotIsExhaustedWhenAllSlotsAreUsed) {
  for (uint8_t device = 1; device < kPciSlotsPerBus; ++device) {
    absl::StatusOr<uint8_t> slot = root_.FreeSlot();
    ASSERT_TRUE(slot.ok()) << slot.status();
    ASSERT_EQ(*slot, device);
    ASSERT_TRUE(root_.AddFunction(*slot, 0, std::make_shared<RecordingFunction>()).ok());
  }
  absl::StatusOr<uint8_t> slot = root_.FreeSlot();
  EXPECT_EQ(slot.status().code(), absl::StatusCode::kResourceExhausted) << slot.status();
}

}  // namespace
}  // namespace minivmm
