#include "passthrough/vfio_config_virtualizer.h"

#include <linux/pci_regs.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

// A type-0 function with one 16 KiB memory BAR and a capability list starting at `cap_at`,
// exactly 256 bytes long as VfioPciFunction reads it (no slack after the buffer, so an
// out-of-bounds read is one AddressSanitizer sees).
struct HostFunction {
  std::vector<uint8_t> config = std::vector<uint8_t>(kPciLegacyConfigSize, 0);
  VfioHostFunction host;

  HostFunction() {
    config[PCI_VENDOR_ID] = 0x86;
    config[PCI_VENDOR_ID + 1] = 0x80;
    config[PCI_DEVICE_ID] = 0xd3;
    config[PCI_DEVICE_ID + 1] = 0x10;
    host.bar_sizes[0] = 0x4000;
    host.msix_vectors = 4;
  }
  void AddCapability(uint8_t at, uint8_t id) {
    config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    config[PCI_CAPABILITY_LIST] = at;
    config[at + PCI_CAP_LIST_ID] = id;
    config[at + PCI_CAP_LIST_NEXT] = 0;
  }
  uint8_t GuestReads(const VfioConfigVirtualizer& v, uint32_t offset) {
    uint8_t byte = 0;
    v.Read(offset, std::span<uint8_t>(&byte, 1));
    return byte;
  }
};

// The MSI-X capability is 12 bytes (PCI 3.0 §6.8.2); at 0xfc (or 0xf8) it runs past the legacy
// config space. It must be hidden without reading its Table/PBA dwords beyond the buffer.
TEST(VfioConfigVirtualizerTest, HidesMsixCapabilityThatRunsPastConfigSpace) {
  for (uint8_t at : {uint8_t{0xf8}, uint8_t{0xfc}}) {
    HostFunction f;
    f.AddCapability(at, PCI_CAP_ID_MSIX);
    absl::StatusOr<VfioConfigVirtualizer> v = VfioConfigVirtualizer::Create(f.config, f.host);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_FALSE(v->msix().has_value()) << "capability at " << int{at};
    EXPECT_EQ(f.GuestReads(*v, PCI_CAPABILITY_LIST), 0) << "capability at " << int{at};
  }
}

// The same capability where it fits, pointing into BAR 0, is shown with its table.
TEST(VfioConfigVirtualizerTest, ShowsMsixCapabilityThatFits) {
  HostFunction f;
  f.AddCapability(0xf0, PCI_CAP_ID_MSIX);
  f.config[0xf0 + PCI_MSIX_FLAGS] = 3;       // 4 entries (N - 1)
  f.config[0xf0 + PCI_MSIX_PBA + 1] = 0x20;  // PBA at BAR 0 + 0x2000
  absl::StatusOr<VfioConfigVirtualizer> v = VfioConfigVirtualizer::Create(f.config, f.host);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_TRUE(v->msix().has_value());
  EXPECT_EQ(v->msix()->table_size, 4);
  EXPECT_EQ(v->msix()->pba_offset, 0x2000u);
  EXPECT_EQ(f.GuestReads(*v, PCI_CAPABILITY_LIST), 0xf0);
}

}  // namespace
}  // namespace minivmm
