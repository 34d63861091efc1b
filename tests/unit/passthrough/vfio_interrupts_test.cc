// VfioInterrupts: MSI per-vector masking (PCI 3.0 §6.8.1.7) reaches the vectors, so a masked
// vector holds what the device raises instead of delivering it.
#include "passthrough/vfio_interrupts.h"

#include <linux/vfio.h>

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/passthrough/fake_vfio_device.h"

namespace minivmm {
namespace {

constexpr MsiMessage kMessage = {.address = 0xfee00000, .data = 0x4040};

class VfioInterruptsMsiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_->irqs[VFIO_PCI_MSI_IRQ_INDEX].count = 4;
    absl::StatusOr<std::unique_ptr<VfioInterrupts>> created =
        VfioInterrupts::Create(&device_, &sink_, /*intx_gsi=*/std::nullopt, /*msix_vectors=*/0);
    ASSERT_TRUE(created.ok()) << created.status();
    interrupts_ = *std::move(created);
  }
  static VfioMsiState Msi(uint32_t mask_bits) {
    return {.enabled = true, .vectors = 4, .message = kMessage, .mask_bits = mask_bits};
  }
  // The last mask state set on each vector (false where none was ever set: vectors start
  // unmasked).
  std::vector<bool> Masks() const {
    std::vector<bool> masks;
    for (const FakeVfioVector* vector : sink_.vectors()) {
      masks.push_back(!vector->masks().empty() && vector->masks().back());
    }
    return masks;
  }

  std::shared_ptr<FakeVfioState> state_ = MakeE1000eState();
  FakeVfioDevice device_{state_};
  FakeVfioInterruptSink sink_;
  std::unique_ptr<VfioInterrupts> interrupts_;
};

TEST_F(VfioInterruptsMsiTest, MaskBitsWrittenWhileEnabledMaskAndUnmaskTheirVectors) {
  ASSERT_TRUE(interrupts_->Update(false, Msi(0)).ok());
  ASSERT_EQ(sink_.vectors().size(), 4u);
  EXPECT_EQ(Masks(), std::vector<bool>({false, false, false, false}));

  ASSERT_TRUE(interrupts_->Update(false, Msi(0b0101)).ok());
  EXPECT_EQ(Masks(), std::vector<bool>({true, false, true, false}));
  ASSERT_TRUE(interrupts_->Update(false, Msi(0b0100)).ok());
  EXPECT_EQ(Masks(), std::vector<bool>({false, false, true, false}));
  // Only changes reach the vectors: vector 3 was never touched.
  EXPECT_TRUE(sink_.vectors()[3]->masks().empty());
}

TEST_F(VfioInterruptsMsiTest, VectorsMaskedBeforeEnableStartMasked) {
  ASSERT_TRUE(interrupts_->Update(false, Msi(0b0010)).ok());
  ASSERT_EQ(sink_.vectors().size(), 4u);
  EXPECT_EQ(Masks(), std::vector<bool>({false, true, false, false}));
}

}  // namespace
}  // namespace minivmm
