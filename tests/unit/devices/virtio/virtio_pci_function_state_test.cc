// VirtioPciFunction across a snapshot: Quiesce holds the queues still, SaveState/RestoreState
// carry the driver's setup into a new function, and the restored queue continues at the used
// ring's index, as the guest left it.
#include <linux/virtio_pci.h>

#include "devices/virtio/virtio_pci_function.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/virtio/virtio_pci_function_fixture.h"

namespace minivmm::virtio {
namespace {

class VirtioPciFunctionStateTest : public VirtioPciFunctionTest {
 protected:
  // One request on queue 0: a buffer for the device to fill, offered and kicked; waits until the
  // used ring's idx reaches used_after.
  void ServeOne(uint16_t head, uint16_t used_after) {
    PutDescriptor(head, kBuffer + 0x100 * head, kBufferSize, VRING_DESC_F_WRITE);
    Offer(head);
    Kick();
    ASSERT_TRUE(WaitFor([&] { return UsedIdx() == used_after; }))
        << "used idx " << UsedIdx() << ", wanted " << used_after;
  }
};

TEST_F(VirtioPciFunctionStateTest, RestoredFunctionContinuesTheQueueWhereTheSnapshotLeftIt) {
  InitDriver();
  ServeOne(0, 1);
  ServeOne(1, 2);
  function_->Quiesce();
  const state::VirtioPciState saved = function_->SaveState();
  EXPECT_EQ(saved.common().queues(0).size(), kQueueSize);
  EXPECT_EQ(saved.common().status(), kAcknowledge | kDriver | kFeaturesOk | kDriverOk);

  // A new process: a fresh function on the same (restored) memory, with fresh MSI vectors.
  CreateFunction(&write_events_, &intx_);
  ASSERT_FALSE(BarMappedAt(kBarAddress)) << "a fresh function decodes before the guest set it up";
  ASSERT_TRUE(function_->RestoreState(saved).ok());

  EXPECT_TRUE(BarMappedAt(kBarAddress));
  EXPECT_EQ(Status(), kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
  BarWrite(kQueueSelect, 2, 0);
  EXPECT_EQ(BarRead(kQueueEnable, 2), 1u);
  EXPECT_EQ(BarRead(kQueueMsixVector, 2), kQueueVector);
  EXPECT_EQ(queue_msi_->last_message(), kQueueMessage) << "MSI-X route not restored";
  EXPECT_EQ(config_msi_->last_message(), kConfigMessage);
  EXPECT_EQ(write_events_.live_watches().size(), 1u) << "doorbell not registered again";

  // The driver has read used slots 0 and 1; the device must not serve those chains again.
  const vring_used_elem consumed = {.id = 0xdead, .len = 0xbeef};
  ASSERT_TRUE(memory_.WriteObject(kUsedRing + 4, consumed).ok());
  ASSERT_TRUE(memory_.WriteObject(kUsedRing + 4 + sizeof(vring_used_elem), consumed).ok());
  // The next request lands in used slot 2: the device went on from the guest's index.
  ServeOne(2, 3);
  EXPECT_EQ(UsedElem(2).id, 2u);
  EXPECT_EQ(UsedElem(2).len, kBufferSize);
  EXPECT_EQ(UsedElem(0).id, 0xdeadu) << "a chain served before the snapshot was served again";
  EXPECT_EQ(UsedElem(1).id, 0xdeadu) << "a chain served before the snapshot was served again";
  EXPECT_GE(queue_msi_->triggers(), 1);
}

TEST_F(VirtioPciFunctionStateTest, QuiescedFunctionLeavesRequestsUntilResumed) {
  InitDriver();
  function_->Quiesce();
  PutDescriptor(0, kBuffer, kBufferSize, VRING_DESC_F_WRITE);
  Offer(0);
  Kick();
  EXPECT_TRUE(StaysTrue([&] { return UsedIdx() == 0; })) << "served while quiesced";
  function_->Resume();
  EXPECT_TRUE(WaitFor([&] { return UsedIdx() == 1; })) << "the kick was lost across Resume";
}

TEST_F(VirtioPciFunctionStateTest, RestoreRefusesTheStateOfAnotherDevice) {
  InitDriver();
  function_->Quiesce();
  state::VirtioPciState saved = function_->SaveState();
  saved.set_name("virtio-blk");
  CreateFunction(&write_events_, &intx_);
  const absl::Status status = function_->RestoreState(saved);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_NE(status.message().find("virtio-blk"), std::string_view::npos) << status;
  EXPECT_FALSE(BarMappedAt(kBarAddress)) << "a refused restore changed the function";
}

}  // namespace
}  // namespace minivmm::virtio
