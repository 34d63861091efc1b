#include "devices/pci/pci_config_space.h"

#include <linux/pci_regs.h>

#include <array>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace minivmm {
namespace {

constexpr PciIds kIds = {.vendor_id = 0x1af4,
                         .device_id = 0x1041,
                         .subsystem_vendor_id = 0x1af4,
                         .subsystem_id = 0x0001,
                         .revision = 0x01,
                         .class_code = 0x020000};

class PciConfigSpaceTest : public ::testing::Test {
 protected:
  uint32_t Read(uint32_t offset, size_t size) {
    std::array<uint8_t, 4> bytes{};
    config_.Read(offset, std::span(bytes.data(), size));
    return bytes[0] | bytes[1] << 8 | bytes[2] << 16 | uint32_t{bytes[3]} << 24;
  }
  uint32_t Read32(uint32_t offset) { return Read(offset, 4); }
  uint16_t Read16(uint32_t offset) { return static_cast<uint16_t>(Read(offset, 2)); }
  uint8_t Read8(uint32_t offset) { return static_cast<uint8_t>(Read(offset, 1)); }

  PciConfigSpace::WriteEffect Write(uint32_t offset, size_t size, uint32_t value) {
    std::array<uint8_t, 4> bytes = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
                                    static_cast<uint8_t>(value >> 16),
                                    static_cast<uint8_t>(value >> 24)};
    return config_.Write(offset, std::span(bytes.data(), size));
  }
  PciConfigSpace::WriteEffect Write32(uint32_t offset, uint32_t value) {
    return Write(offset, 4, value);
  }
  PciConfigSpace::WriteEffect Write16(uint32_t offset, uint16_t value) {
    return Write(offset, 2, value);
  }
  PciConfigSpace::WriteEffect Write8(uint32_t offset, uint8_t value) {
    return Write(offset, 1, value);
  }

  // The classic sizing sequence (PCI 3.0 §6.2.5.1): write all-ones, read, restore.
  uint32_t Size(uint32_t offset) {
    uint32_t saved = Read32(offset);
    Write32(offset, 0xffffffff);
    uint32_t sized = Read32(offset);
    Write32(offset, saved);
    return sized;
  }

  PciConfigSpace config_{kIds};
};

TEST_F(PciConfigSpaceTest, HeaderReportsIdsClassAndType) {
  EXPECT_EQ(Read32(PCI_VENDOR_ID), 0x10411af4u);
  EXPECT_EQ(Read16(PCI_DEVICE_ID), 0x1041);
  EXPECT_EQ(Read32(PCI_CLASS_REVISION), 0x02000001u);
  EXPECT_EQ(Read8(PCI_CLASS_DEVICE + 1), 0x02);  // base class: network controller
  EXPECT_EQ(Read8(PCI_HEADER_TYPE), PCI_HEADER_TYPE_NORMAL);
  EXPECT_EQ(Read32(PCI_SUBSYSTEM_VENDOR_ID), 0x00011af4u);
  EXPECT_EQ(Read16(PCI_COMMAND), 0);
  EXPECT_EQ(Read16(PCI_STATUS), 0);
  EXPECT_EQ(Read8(PCI_CAPABILITY_LIST), 0);
  EXPECT_EQ(Read8(PCI_INTERRUPT_PIN), 0);
}

TEST_F(PciConfigSpaceTest, IdentityRegistersAreReadOnly) {
  for (uint32_t offset : {PCI_VENDOR_ID, PCI_CLASS_REVISION, PCI_SUBSYSTEM_VENDOR_ID}) {
    uint32_t before = Read32(offset);
    Write32(offset, 0xffffffff);
    Write32(offset, 0);
    EXPECT_EQ(Read32(offset), before) << "offset " << offset;
  }
  config_.SetInterruptPin(1);
  Write32(PCI_CACHE_LINE_SIZE, 0xffffffff);  // also header type and BIST
  EXPECT_EQ(Read8(PCI_HEADER_TYPE), PCI_HEADER_TYPE_NORMAL);
  EXPECT_EQ(Read8(PCI_LATENCY_TIMER), 0);
  EXPECT_EQ(Read8(PCI_BIST), 0);
  EXPECT_EQ(Read8(PCI_CACHE_LINE_SIZE), 0xff) << "cache line size is read/write";
  Write32(PCI_INTERRUPT_LINE, 0xffffffff);
  EXPECT_EQ(Read8(PCI_INTERRUPT_LINE), 0xff) << "interrupt line is read/write";
  EXPECT_EQ(Read8(PCI_INTERRUPT_PIN), 1);
  EXPECT_EQ(Read16(PCI_MIN_GNT), 0);
  Write8(PCI_CAPABILITY_LIST, 0x40);
  EXPECT_EQ(Read8(PCI_CAPABILITY_LIST), 0);
}

TEST_F(PciConfigSpaceTest, CommandKeepsOnlyImplementedBits) {
  Write16(PCI_COMMAND, 0xffff);
  EXPECT_EQ(config_.command(), PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                   PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
                                   PCI_COMMAND_INTX_DISABLE);
  Write16(PCI_COMMAND, 0);
  EXPECT_EQ(config_.command(), 0);
}

TEST_F(PciConfigSpaceTest, StatusErrorBitsClearOnlyWhereOneIsWritten) {
  constexpr uint16_t kErrors = PCI_STATUS_DETECTED_PARITY | PCI_STATUS_SIG_SYSTEM_ERROR |
                               PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_REC_TARGET_ABORT |
                               PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_PARITY;
  config_.SetU16(PCI_STATUS, kErrors | PCI_STATUS_INTERRUPT);

  Write16(PCI_STATUS, PCI_STATUS_REC_MASTER_ABORT);
  EXPECT_EQ(Read16(PCI_STATUS), (kErrors & ~PCI_STATUS_REC_MASTER_ABORT) | PCI_STATUS_INTERRUPT);

  // A dword write of the command register writes 0 to status: nothing clears.
  Write32(PCI_COMMAND, PCI_COMMAND_MEMORY);
  EXPECT_EQ(Read16(PCI_STATUS), (kErrors & ~PCI_STATUS_REC_MASTER_ABORT) | PCI_STATUS_INTERRUPT);
  EXPECT_EQ(config_.command(), PCI_COMMAND_MEMORY);

  // Writing all-ones clears every error bit but leaves the read-only ones.
  Write16(PCI_STATUS, 0xffff);
  EXPECT_EQ(Read16(PCI_STATUS), PCI_STATUS_INTERRUPT);
}

TEST_F(PciConfigSpaceTest, Memory32BarSizingReturnsSizeMask) {
  ASSERT_TRUE(config_.AddBar(0, PciBarKind::kMemory32, 0x1000).ok());
  ASSERT_TRUE(config_.AddBar(1, PciBarKind::kMemory32, 0x100, /*prefetchable=*/true).ok());
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_0), 0u);
  EXPECT_EQ(Size(PCI_BASE_ADDRESS_0), 0xfffff000u);
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_1), unsigned{PCI_BASE_ADDRESS_MEM_PREFETCH});
  EXPECT_EQ(Size(PCI_BASE_ADDRESS_1), 0xffffff00u | PCI_BASE_ADDRESS_MEM_PREFETCH);
  // Undeclared BARs are hardwired to 0 (§6.2.5.1: "not implemented").
  EXPECT_EQ(Size(PCI_BASE_ADDRESS_2), 0u);
}

TEST_F(PciConfigSpaceTest, Memory64BarSizingCoversBothHalves) {
  ASSERT_TRUE(config_.AddBar(2, PciBarKind::kMemory64, 0x4000, /*prefetchable=*/true).ok());
  constexpr uint32_t kFlags = PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH;
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_2), kFlags);
  EXPECT_EQ(Size(PCI_BASE_ADDRESS_2), 0xffffc000u | kFlags);
  EXPECT_EQ(Size(PCI_BASE_ADDRESS_3), 0xffffffffu);

  // An 8 GiB BAR has no writable address bits in its low dword.
  ASSERT_TRUE(config_.AddBar(4, PciBarKind::kMemory64, uint64_t{8} << 30).ok());
  EXPECT_EQ(Size(PCI_BASE_ADDRESS_4), unsigned{PCI_BASE_ADDRESS_MEM_TYPE_64});
  EXPECT_EQ(Size(PCI_BASE_ADDRESS_5), 0xfffffffeu);
}

TEST_F(PciConfigSpaceTest, IoBarSizing) {
  ASSERT_TRUE(config_.AddBar(4, PciBarKind::kIo, 0x20).ok());
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_4), unsigned{PCI_BASE_ADDRESS_SPACE_IO});
  EXPECT_EQ(Size(PCI_BASE_ADDRESS_4), 0xffffffe0u | PCI_BASE_ADDRESS_SPACE_IO);
  Write32(PCI_BASE_ADDRESS_4, 0xc041);
  EXPECT_EQ(config_.BarAddress(4), 0xc040u) << "bits below the size are read-only";
}

TEST_F(PciConfigSpaceTest, BarAddressFollowsGuestProgramming) {
  ASSERT_TRUE(config_.AddBar(0, PciBarKind::kMemory64, 0x10000).ok());
  Write32(PCI_BASE_ADDRESS_0, 0x12340000 | 0xf);  // flag bits written as 1 stay as they are
  Write32(PCI_BASE_ADDRESS_1, 0x1);
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_0), 0x12340000u | PCI_BASE_ADDRESS_MEM_TYPE_64);
  EXPECT_EQ(config_.BarAddress(0), 0x112340000u);
  EXPECT_EQ(config_.BarSize(0), 0x10000u);
  EXPECT_EQ(config_.BarKind(0), PciBarKind::kMemory64);

  ASSERT_TRUE(config_.SetBarAddress(0, 0xe0000000).ok());
  EXPECT_EQ(config_.BarAddress(0), 0xe0000000u);
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_0), 0xe0000000u | PCI_BASE_ADDRESS_MEM_TYPE_64);
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_1), 0u);
}

TEST_F(PciConfigSpaceTest, BarQueriesIgnoreUndeclaredAndUpperHalves) {
  ASSERT_TRUE(config_.AddBar(0, PciBarKind::kMemory64, 0x1000).ok());
  for (int index : {-1, 1, 2, 6}) {
    EXPECT_EQ(config_.BarAddress(index), std::nullopt) << index;
    EXPECT_EQ(config_.BarSize(index), std::nullopt) << index;
    EXPECT_EQ(config_.BarKind(index), std::nullopt) << index;
    EXPECT_FALSE(config_.BarDecoding(index)) << index;
  }
}

TEST_F(PciConfigSpaceTest, SetBarAddressChecksAlignmentAndReach) {
  ASSERT_TRUE(config_.AddBar(0, PciBarKind::kMemory32, 0x1000).ok());
  ASSERT_TRUE(config_.AddBar(1, PciBarKind::kIo, 0x100).ok());
  ASSERT_TRUE(config_.AddBar(2, PciBarKind::kMemory64, 0x1000).ok());
  EXPECT_EQ(config_.SetBarAddress(0, 0xfebf0800).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config_.SetBarAddress(0, 0x100000000).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config_.SetBarAddress(1, 0x10000).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config_.SetBarAddress(3, 0x1000).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(config_.SetBarAddress(4, 0x1000).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(config_.SetBarAddress(0, 0xfffff000).ok());
  EXPECT_TRUE(config_.SetBarAddress(1, 0xff00).ok());
  EXPECT_TRUE(config_.SetBarAddress(2, 0x7f0000000000).ok());
  EXPECT_EQ(config_.BarAddress(2), 0x7f0000000000u);
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_1), 0xff00u | PCI_BASE_ADDRESS_SPACE_IO);
}

TEST_F(PciConfigSpaceTest, AddBarRejectsBadIndexSizeAndOverlap) {
  auto code = [&](int index, PciBarKind kind, uint64_t size, bool prefetchable = false) {
    return config_.AddBar(index, kind, size, prefetchable).code();
  };
  using enum PciBarKind;
  EXPECT_EQ(code(-1, kMemory32, 0x1000), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(6, kMemory32, 0x1000), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(5, kMemory64, 0x1000), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(0, kMemory32, 0x1800), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(0, kMemory32, 8), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(0, kMemory32, 0), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(0, kMemory32, uint64_t{1} << 32), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(0, kIo, 2), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(0, kIo, 0x20000), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(0, kIo, 0x20, /*prefetchable=*/true), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(code(0, kMemory64, 0x1000), absl::StatusCode::kOk);
  EXPECT_EQ(code(1, kMemory32, 0x1000), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(code(0, kIo, 0x20), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(code(3, kMemory32, 0x1000), absl::StatusCode::kOk);
  EXPECT_EQ(code(2, kMemory64, 0x1000), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(code(2, kIo, 4), absl::StatusCode::kOk);
  EXPECT_EQ(code(4, kMemory64, uint64_t{1} << 63), absl::StatusCode::kOk);
}

TEST_F(PciConfigSpaceTest, DecodingFollowsCommandEnableForTheBarsKind) {
  ASSERT_TRUE(config_.AddBar(0, PciBarKind::kMemory32, 0x1000).ok());
  ASSERT_TRUE(config_.AddBar(1, PciBarKind::kIo, 0x20).ok());
  EXPECT_FALSE(config_.BarDecoding(0));
  EXPECT_FALSE(config_.BarDecoding(1));
  Write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
  EXPECT_TRUE(config_.BarDecoding(0));
  EXPECT_FALSE(config_.BarDecoding(1));
  Write16(PCI_COMMAND, PCI_COMMAND_IO);
  EXPECT_FALSE(config_.BarDecoding(0));
  EXPECT_TRUE(config_.BarDecoding(1));
}

TEST_F(PciConfigSpaceTest, WriteEffectReportsDecodeToggles) {
  ASSERT_TRUE(config_.AddBar(0, PciBarKind::kMemory32, 0x1000).ok());
  ASSERT_TRUE(config_.AddBar(2, PciBarKind::kMemory64, 0x1000).ok());
  ASSERT_TRUE(config_.AddBar(4, PciBarKind::kIo, 0x20).ok());
  ASSERT_TRUE(config_.SetBarAddress(0, 0xfe000000).ok());

  PciConfigSpace::WriteEffect effect = Write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
  EXPECT_TRUE(effect.command_changed);
  EXPECT_EQ(effect.bars_changed.to_ulong(), 0b000101u) << "both memory BARs, not the I/O BAR";

  effect = Write16(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  EXPECT_TRUE(effect.command_changed);
  EXPECT_TRUE(effect.bars_changed.none());

  effect = Write16(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  EXPECT_FALSE(effect.command_changed);

  effect = Write16(PCI_COMMAND, PCI_COMMAND_IO);
  EXPECT_EQ(effect.bars_changed.to_ulong(), 0b010101u);
}

TEST_F(PciConfigSpaceTest, WriteEffectReportsBarMovesWhileDecoding) {
  ASSERT_TRUE(config_.AddBar(0, PciBarKind::kMemory32, 0x1000).ok());
  ASSERT_TRUE(config_.AddBar(2, PciBarKind::kMemory64, 0x1000).ok());
  ASSERT_TRUE(config_.SetBarAddress(0, 0xfe000000).ok());
  ASSERT_TRUE(config_.SetBarAddress(2, 0x800000000).ok());

  // Moves while decoding is off are not mapping changes.
  PciConfigSpace::WriteEffect effect = Write32(PCI_BASE_ADDRESS_0, 0xfd000000);
  EXPECT_TRUE(effect.bars_changed.none());
  EXPECT_FALSE(effect.command_changed);

  Write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
  effect = Write32(PCI_BASE_ADDRESS_0, 0xfc000000);
  EXPECT_EQ(effect.bars_changed.to_ulong(), 0b1u);
  EXPECT_FALSE(effect.command_changed);
  effect = Write32(PCI_BASE_ADDRESS_0, 0xfc000000);
  EXPECT_TRUE(effect.bars_changed.none()) << "same address again";

  effect = Write32(PCI_BASE_ADDRESS_3, 0x9);
  EXPECT_EQ(effect.bars_changed.to_ulong(), 0b100u) << "upper half is reported as its BAR";
  EXPECT_EQ(config_.BarAddress(2), 0x900000000u);

  // Sizing with decoding left on: the BAR stops decoding while it holds all-ones.
  effect = Write32(PCI_BASE_ADDRESS_2, 0xffffffff);
  EXPECT_EQ(effect.bars_changed.to_ulong(), 0b100u);
  EXPECT_FALSE(config_.BarDecoding(2));
  effect = Write32(PCI_BASE_ADDRESS_2, 0);
  EXPECT_EQ(effect.bars_changed.to_ulong(), 0b100u);
  EXPECT_TRUE(config_.BarDecoding(2));
  effect = Write32(PCI_BASE_ADDRESS_3, 0xffffffff);
  EXPECT_FALSE(config_.BarDecoding(2));
  effect = Write32(PCI_BASE_ADDRESS_3, 0x9);
  EXPECT_EQ(effect.bars_changed.to_ulong(), 0b100u);
  EXPECT_EQ(config_.BarAddress(2), 0x900000000u);
  EXPECT_TRUE(config_.BarDecoding(2));
}

TEST_F(PciConfigSpaceTest, NarrowWritesIntoBarsMergeWithTheRest) {
  ASSERT_TRUE(config_.AddBar(1, PciBarKind::kMemory32, 0x100, /*prefetchable=*/true).ok());
  Write8(PCI_BASE_ADDRESS_1 + 1, 0xab);
  Write16(PCI_BASE_ADDRESS_1 + 2, 0xfedc);
  EXPECT_EQ(config_.BarAddress(1), 0xfedcab00u);
  Write8(PCI_BASE_ADDRESS_1, 0xff);  // low byte: flags only, read-only
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_1), 0xfedcab00u | PCI_BASE_ADDRESS_MEM_PREFETCH);
  EXPECT_EQ(Read16(PCI_BASE_ADDRESS_1 + 2), 0xfedc);
  EXPECT_EQ(Read8(PCI_BASE_ADDRESS_1 + 1), 0xab);

  Write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
  PciConfigSpace::WriteEffect effect = Write8(PCI_BASE_ADDRESS_1 + 3, 0xfd);
  EXPECT_EQ(effect.bars_changed.to_ulong(), 0b10u);
  EXPECT_EQ(config_.BarAddress(1), 0xfddcab00u);
}

TEST_F(PciConfigSpaceTest, CapabilitiesChainInOrder) {
  EXPECT_EQ(Read16(PCI_STATUS) & PCI_STATUS_CAP_LIST, 0);
  const std::vector<uint8_t> body1 = {0x11, 0x22, 0x33};
  const std::vector<uint8_t> mask1 = {0x00, 0xf0, 0x00};
  absl::StatusOr<uint8_t> first = config_.AddCapability(PCI_CAP_ID_VNDR, body1, mask1);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, PCI_STD_HEADER_SIZEOF);
  EXPECT_NE(Read16(PCI_STATUS) & PCI_STATUS_CAP_LIST, 0);

  const std::vector<uint8_t> body2 = {0xaa, 0xbb};
  absl::StatusOr<uint8_t> second = config_.AddCapability(PCI_CAP_ID_MSIX, body2, {});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, 0x48) << "0x40 + 2 + 3 rounded up to a dword";

  EXPECT_EQ(Read8(PCI_CAPABILITY_LIST), *first);
  EXPECT_EQ(Read8(*first + PCI_CAP_LIST_ID), PCI_CAP_ID_VNDR);
  EXPECT_EQ(Read8(*first + PCI_CAP_LIST_NEXT), *second);
  EXPECT_EQ(Read32(*first), 0x22110000u | *second << 8 | PCI_CAP_ID_VNDR);
  EXPECT_EQ(Read8(*second + PCI_CAP_LIST_ID), PCI_CAP_ID_MSIX);
  EXPECT_EQ(Read8(*second + PCI_CAP_LIST_NEXT), 0);
  EXPECT_EQ(Read16(*second + 2), 0xbbaa);

  // Only the masked bits of the body change; ID and next pointer are read-only.
  Write32(*first, 0xffffffff);
  EXPECT_EQ(Read32(*first), 0xf2110000u | *second << 8 | PCI_CAP_ID_VNDR);
  EXPECT_EQ(Read8(*first + 4), 0x33);
  Write32(*second, 0);
  EXPECT_EQ(Read32(*second), 0xbbaa0000u | PCI_CAP_ID_MSIX);
}

TEST_F(PciConfigSpaceTest, AddCapabilityFailsWhenItDoesNotFit) {
  std::vector<uint8_t> body(256 - PCI_STD_HEADER_SIZEOF - 2);  // exactly fills the area
  ASSERT_TRUE(config_.AddCapability(PCI_CAP_ID_VNDR, body, {}).ok());
  EXPECT_EQ(config_.AddCapability(PCI_CAP_ID_VNDR, {}, {}).status().code(),
            absl::StatusCode::kResourceExhausted);

  PciConfigSpace other(kIds);
  body.push_back(0);
  EXPECT_EQ(other.AddCapability(PCI_CAP_ID_VNDR, body, {}).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Read8(PCI_CAPABILITY_LIST), PCI_STD_HEADER_SIZEOF);
  EXPECT_EQ(other.ReadU16(PCI_STATUS) & PCI_STATUS_CAP_LIST, 0) << "a failed add changes nothing";
}

TEST_F(PciConfigSpaceTest, AddCapabilityRejectsMaskOfWrongLength) {
  const std::vector<uint8_t> body = {1, 2, 3, 4};
  const std::vector<uint8_t> mask = {0xff};
  EXPECT_EQ(config_.AddCapability(PCI_CAP_ID_VNDR, body, mask).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PciConfigSpaceTest, ExpansionRomIsNotImplemented) {
  Write32(PCI_ROM_ADDRESS, 0xffffffff);
  EXPECT_EQ(Read32(PCI_ROM_ADDRESS), 0u);
}

TEST_F(PciConfigSpaceTest, ExtendedConfigSpaceReadsZeroAndIgnoresWrites) {
  Write32(0x100, 0xffffffff);
  Write8(kPciConfigSpaceSize - 1, 0xff);
  EXPECT_EQ(Read32(0x100), 0u);
  EXPECT_EQ(Read8(kPciConfigSpaceSize - 1), 0);
}

TEST_F(PciConfigSpaceTest, MultiFunctionAndInterruptPin) {
  config_.SetMultiFunction(true);
  EXPECT_EQ(Read8(PCI_HEADER_TYPE), 0x80);
  config_.SetMultiFunction(false);
  EXPECT_EQ(Read8(PCI_HEADER_TYPE), PCI_HEADER_TYPE_NORMAL);
  config_.SetInterruptPin(1);
  Write8(PCI_INTERRUPT_LINE, 11);
  EXPECT_EQ(Read16(PCI_INTERRUPT_LINE), 0x010b);
}

TEST_F(PciConfigSpaceTest, OwnerAccessorsBypassTheMasks) {
  config_.SetU32(PCI_VENDOR_ID, 0x12345678);
  EXPECT_EQ(config_.ReadU32(PCI_VENDOR_ID), 0x12345678u);
  EXPECT_EQ(config_.ReadU16(PCI_DEVICE_ID), 0x1234);
  config_.SetU16(0x100, 0xbeef);
  EXPECT_EQ(Read16(0x100), 0xbeef);
  config_.raw()[0x104] = 0x5a;
  EXPECT_EQ(Read8(0x104), 0x5a);
  EXPECT_EQ(config_.raw().size(), kPciConfigSpaceSize);
}

}  // namespace
}  // namespace minivmm
