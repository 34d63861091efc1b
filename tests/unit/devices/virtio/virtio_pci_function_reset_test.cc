// VirtioPciFunction when the driver breaks the protocol (DEVICE_NEEDS_RESET) and across reset,
// BAR moves and teardown.
#include <linux/virtio_pci.h>

#include <cstdint>
#include <vector>

#include "devices/virtio/virtio_pci_function.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/virtio/virtio_pci_function_fixture.h"

namespace minivmm::virtio {
namespace {

// --- A driver breaking the protocol ---

TEST_F(VirtioPciFunctionTest, DescriptorOutsideGuestMemoryNeedsResetAndSignalsConfigVector) {
  InitDriver();
  PutDescriptor(0, kMemorySize + 0x1000, kBufferSize, VRING_DESC_F_WRITE);
  Offer(0);
  Kick();

  ASSERT_TRUE(WaitFor([&] { return config_msi_->triggers() >= 1; }));
  EXPECT_EQ(config_msi_->last_message(), kConfigMessage);
  EXPECT_NE(Status() & kNeedsReset, 0);
  EXPECT_EQ(Status() & kDriverOk, kDriverOk);  // the other bits stay (§2.1.2)
  EXPECT_EQ(UsedIdx(), 0);
  EXPECT_EQ(queue_msi_->triggers(), 0);

  // A broken device serves nothing more until reset, not even a good buffer.
  PutDescriptor(1, kBuffer, kBufferSize, VRING_DESC_F_WRITE);
  Offer(1);
  Kick();
  EXPECT_TRUE(StaysTrue([&] { return UsedIdx() == 0 && queue_msi_->triggers() == 0; }));
}

TEST_F(VirtioPciFunctionTest, DescriptorStraddlingEndOfMemoryNeedsResetAndRaisesIntx) {
  InitDriver({.msix = false});
  PutDescriptor(0, kMemorySize - kBufferSize / 2, kBufferSize, VRING_DESC_F_WRITE);
  Offer(0);
  Kick();

  ASSERT_TRUE(WaitFor([&] { return intx_.level(); }));
  EXPECT_NE(Status() & kNeedsReset, 0);
  EXPECT_EQ(ReadIsr(), kIsrConfig);
  EXPECT_FALSE(intx_.level());
  EXPECT_EQ(UsedIdx(), 0);
}

TEST_F(VirtioPciFunctionTest, QueueOutsideGuestMemoryAtDriverOkNeedsReset) {
  DriverOptions options;
  options.queue.desc_table = kMemorySize;
  InitDriver(options);

  EXPECT_NE(Status() & kNeedsReset, 0);
  EXPECT_EQ(config_msi_->triggers(), 1);
  EXPECT_TRUE(write_events_.watches().empty());
}

TEST_F(VirtioPciFunctionTest, RecoversFromNeedsResetAfterReset) {
  InitDriver();
  PutDescriptor(0, kMemorySize + 0x1000, kBufferSize, VRING_DESC_F_WRITE);
  Offer(0);
  Kick();
  ASSERT_TRUE(WaitFor([&] { return (Status() & kNeedsReset) != 0; }));

  SetStatus(0);
  EXPECT_EQ(Status(), 0);
  ASSERT_TRUE(memory_.Zero(0, 0x10000).ok());  // the driver frees and reallocates its rings
  InitDriver();
  EXPECT_EQ(Status() & kNeedsReset, 0);
  PutDescriptor(0, kBuffer, kBufferSize, VRING_DESC_F_WRITE);
  Offer(0);
  Kick();
  ASSERT_TRUE(WaitFor([&] { return UsedIdx() == 1 && queue_msi_->triggers() >= 1; }));
  EXPECT_EQ(UsedElem(0).len, kBufferSize);
  EXPECT_EQ(Status() & kNeedsReset, 0);
}

// --- Reset and teardown ---

TEST_F(VirtioPciFunctionTest, ResetAfterActivationDropsDoorbellAndStopsInterrupts) {
  InitDriver();
  PutDescriptor(0, kBuffer, kBufferSize, VRING_DESC_F_WRITE);
  Offer(0);
  Kick();
  ASSERT_TRUE(WaitFor([&] { return queue_msi_->triggers() == 1; }));
  ASSERT_EQ(write_events_.live_watches().size(), 1u);

  SetStatus(0);
  EXPECT_EQ(Status(), 0);
  EXPECT_TRUE(write_events_.live_watches().empty());
  EXPECT_EQ(write_events_.watches().size(), 1u);
  EXPECT_EQ(BarRead(kQueueEnable, 2), 0u);
  EXPECT_EQ(BarRead(kQueueSizeReg, 2), VirtioRng::kQueueSize);
  EXPECT_EQ(BarRead(kQueueMsixVector, 2), VIRTIO_MSI_NO_VECTOR);
  EXPECT_EQ(BarRead(kConfigMsixVector, 2), VIRTIO_MSI_NO_VECTOR);

  // Kicks after the reset reach nobody: the old ring is not the device's any more.
  PutDescriptor(1, kBuffer + 0x100, kBufferSize, VRING_DESC_F_WRITE);
  Offer(1);
  Kick();
  EXPECT_TRUE(StaysTrue([&] {
    return UsedIdx() == 1 && queue_msi_->triggers() == 1 && config_msi_->triggers() == 0 &&
           !intx_.level();
  }));
  EXPECT_TRUE(AllZero(GuestBytes(kBuffer + 0x100, kBufferSize)));
}

TEST_F(VirtioPciFunctionTest, ResetWithIntxPendingClearsIsrAndLine) {
  InitDriver({.msix = false});
  PutDescriptor(0, kBuffer, kBufferSize, VRING_DESC_F_WRITE);
  Offer(0);
  Kick();
  ASSERT_TRUE(WaitFor([&] { return intx_.level(); }));
  SetStatus(0);
  EXPECT_FALSE(intx_.level());
  EXPECT_EQ(ReadIsr(), 0);
}

TEST_F(VirtioPciFunctionTest, MovingTheBarWhileActiveMovesTheDoorbell) {
  InitDriver();
  ASSERT_EQ(write_events_.live_watches().size(), 1u);

  EnableMemory(false);
  EXPECT_TRUE(write_events_.live_watches().empty());
  ProgramBar(kMovedBarAddress);
  EnableMemory(true);
  const std::vector<FakeMmioWriteEvents::WatchRecord> watches = write_events_.live_watches();
  ASSERT_EQ(watches.size(), 1u);
  EXPECT_EQ(watches[0].address, kMovedBarAddress + Layout::kNotify);
  EXPECT_EQ(watches[0].length, 2u);
  EXPECT_FALSE(BarMappedAt(kBarAddress));

  PutDescriptor(0, kBuffer, kBufferSize, VRING_DESC_F_WRITE);
  Offer(0);
  Kick();  // through the bus at the new address
  ASSERT_TRUE(WaitFor([&] { return queue_msi_->triggers() >= 1; }));
  EXPECT_EQ(UsedElem(0).len, kBufferSize);

  Offer(0);
  ASSERT_TRUE(write_events_.SignalWrite(kMovedBarAddress + Layout::kNotify, 2));
  ASSERT_TRUE(WaitFor([&] { return UsedIdx() == 2; }));
}

TEST_F(VirtioPciFunctionTest, DestroyingTheFunctionUnmapsBarAndDropsDoorbell) {
  InitDriver();
  PutDescriptor(0, kBuffer, kBufferSize, VRING_DESC_F_WRITE);
  Offer(0);
  Kick();
  ASSERT_TRUE(WaitFor([&] { return queue_msi_->triggers() >= 1; }));

  function_.reset();
  EXPECT_FALSE(BarMappedAt(kBarAddress));
  EXPECT_TRUE(write_events_.live_watches().empty());
}

}  // namespace
}  // namespace minivmm::virtio
