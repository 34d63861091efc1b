// VfioPciFunction: INTx, MSI and MSI-X as VFIO and the interrupt sink see them, and the reset
// and release of the device. The fixture is in vfio_pci_function_fixture.h.
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "passthrough/vfio_pci_function.h"
#include "tests/unit/passthrough/vfio_pci_function_fixture.h"

namespace minivmm::vfio_pci_function_testing {
namespace {

TEST_F(VfioPciFunctionTest, InterruptLineIsVirtual) {
  Create();
  EXPECT_EQ(ReadConfig(PCI_INTERRUPT_LINE, 1), kIntxGsi);
  WriteConfig(PCI_INTERRUPT_LINE, 5, 1);
  EXPECT_EQ(ReadConfig(PCI_INTERRUPT_LINE, 1), 5u);
  EXPECT_EQ(state_->config[PCI_INTERRUPT_LINE], 11);
  EXPECT_THAT(state_->config_writes, IsEmpty());
}

TEST_F(VfioPciFunctionTest, SetsUpIntxAtCreation) {
  Create();
  ASSERT_EQ(sink_.intx().size(), 1u);
  const FakeVfioIntx& intx = *sink_.intx()[0];
  EXPECT_EQ(intx.gsi(), kIntxGsi);
  ASSERT_EQ(state_->irq_calls.size(), 1u);
  EXPECT_EQ(state_->irq_calls[0].index, static_cast<uint32_t>(VFIO_PCI_INTX_IRQ_INDEX));
  EXPECT_EQ(state_->irq_calls[0].start, 0u);
  EXPECT_THAT(state_->irq_calls[0].fds, ElementsAre(intx.trigger_fd()));
  using P = std::pair<uint32_t, int>;
  EXPECT_THAT(state_->unmask_calls, ElementsAre(P{VFIO_PCI_INTX_IRQ_INDEX, intx.resample_fd()}));
}

// A function whose pin is INTB# (a GPU's audio function, say) signals on the GSI the _PRT gives
// INTB# of its slot, and reports that GSI, not its slot's INTA# one.
TEST_F(VfioPciFunctionTest, IntxUsesTheGsiOfTheFunctionsOwnPin) {
  state_->config[PCI_INTERRUPT_PIN] = 2;  // INTB#
  Create();
  ASSERT_EQ(sink_.intx().size(), 1u);
  EXPECT_EQ(sink_.intx()[0]->gsi(), kIntxGsi + 1);
  EXPECT_EQ(ReadConfig(PCI_INTERRUPT_LINE, 1), kIntxGsi + 1);
  EXPECT_EQ(ReadConfig(PCI_INTERRUPT_PIN, 1), 2u);
}

// Interrupt Pin values above 4 are reserved (PCI 3.0 §6.2.4): no INTx rather than a guess.
TEST_F(VfioPciFunctionTest, NoIntxForAReservedPinValue) {
  state_->config[PCI_INTERRUPT_PIN] = 5;
  Create();
  EXPECT_THAT(sink_.intx(), IsEmpty());
}

TEST_F(VfioPciFunctionTest, NoIntxWithoutAPin) {
  state_->config[PCI_INTERRUPT_PIN] = 0;
  Create();
  EXPECT_THAT(sink_.intx(), IsEmpty());
  EXPECT_THAT(state_->irq_calls, IsEmpty());
  EXPECT_EQ(ReadConfig(PCI_INTERRUPT_PIN, 1), 0u);
}

TEST_F(VfioPciFunctionTest, MsixEnableHandsAllVectorsToVfio) {
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
  for (uint16_t i = 0; i < E::kMsixVectors; ++i) ProgramMsixEntry(i, kMessage0);
  ASSERT_EQ(sink_.vectors().size(), E::kMsixVectors);
  EXPECT_EQ(sink_.vectors()[3]->messages(), std::vector<MsiMessage>{kMessage0});

  state_->irq_calls.clear();
  SetMsixControl(PCI_MSIX_FLAGS_ENABLE);
  EXPECT_EQ(ReadConfig(E::kMsix + PCI_MSIX_FLAGS, 2),
            PCI_MSIX_FLAGS_ENABLE | (E::kMsixVectors - 1u));
  // INTx goes off first: VFIO has one index active at a time.
  ASSERT_EQ(state_->irq_calls.size(), 2u);
  EXPECT_EQ(state_->irq_calls[0].index, static_cast<uint32_t>(VFIO_PCI_INTX_IRQ_INDEX));
  EXPECT_THAT(state_->irq_calls[0].fds, IsEmpty());
  EXPECT_EQ(state_->irq_calls[1].index, static_cast<uint32_t>(VFIO_PCI_MSIX_IRQ_INDEX));
  EXPECT_EQ(state_->irq_calls[1].start, 0u);
  EXPECT_EQ(state_->irq_calls[1].fds, VectorFds());
}

TEST_F(VfioPciFunctionTest, MsixEntriesRoutedAfterEnableGetTheirEventFds) {
  // Linux's order: enable with the function masked, program the entries, unmask the function.
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
  SetMsixControl(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  std::optional<FakeVfioState::IrqCall> enable = state_->LastIrqCall(VFIO_PCI_MSIX_IRQ_INDEX);
  ASSERT_TRUE(enable.has_value());
  EXPECT_EQ(enable->fds, std::vector<int>(E::kMsixVectors, -1));

  ProgramMsixEntry(2, kMessage0);
  ASSERT_EQ(sink_.vectors().size(), 1u);
  EXPECT_EQ(sink_.vectors()[0]->messages(), std::vector<MsiMessage>{kMessage0});
  std::optional<FakeVfioState::IrqCall> vector = state_->LastIrqCall(VFIO_PCI_MSIX_IRQ_INDEX);
  ASSERT_TRUE(vector.has_value());
  EXPECT_EQ(vector->start, 2u);
  EXPECT_THAT(vector->fds, ElementsAre(sink_.vectors()[0]->event_fd()));
  SetMsixControl(PCI_MSIX_FLAGS_ENABLE);
  // INTx on (creation), INTx off, MSI-X on, vector 2; nothing for the function unmask.
  EXPECT_EQ(state_->irq_calls.size(), 4u);
}

TEST_F(VfioPciFunctionTest, MsixTableWriteUpdatesTheRoute) {
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
  SetMsixControl(PCI_MSIX_FLAGS_ENABLE);
  ProgramMsixEntry(1, kMessage0);
  // An affinity change: Linux rewrites an unmasked entry in place.
  const uint64_t entry = kBar3Address + 16 * 1;
  ASSERT_TRUE(
      BusWrite(mmio_, entry + PCI_MSIX_ENTRY_LOWER_ADDR, static_cast<uint32_t>(kMessage1.address)));
  ASSERT_TRUE(BusWrite(mmio_, entry + PCI_MSIX_ENTRY_DATA, kMessage1.data));
  ASSERT_EQ(sink_.vectors().size(), 1u);
  EXPECT_EQ(sink_.vectors()[0]->messages().back(), kMessage1);
  // Only the first routing hands the eventfd to VFIO.
  int msix_calls = 0;
  for (const FakeVfioState::IrqCall& call : state_->irq_calls) {
    msix_calls += call.index == VFIO_PCI_MSIX_IRQ_INDEX;
  }
  EXPECT_EQ(msix_calls, 2);
}

// The device signals its vectors itself, so masking must reach the vector (which holds
// interrupts while masked and delivers them on unmask), entry by entry and for the function.
TEST_F(VfioPciFunctionTest, MsixMaskingReachesTheVector) {
  ASSERT_NO_FATAL_FAILURE(CreateWithOneMsixEntry(1));
  const FakeVfioVector& vector = *sink_.vectors()[0];
  const uint64_t control = MsixEntryAddress(1) + PCI_MSIX_ENTRY_VECTOR_CTRL;
  ASSERT_TRUE(BusWrite(mmio_, control, uint32_t{PCI_MSIX_ENTRY_CTRL_MASKBIT}));
  ASSERT_TRUE(BusWrite(mmio_, control, uint32_t{0}));
  SetMsixControl(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  SetMsixControl(PCI_MSIX_FLAGS_ENABLE);
  EXPECT_THAT(vector.masks(), ElementsAre(false, true, false, true, false));
}

// While an entry is masked its irqfd is unbound and the eventfd keeps what the device raised:
// the guest sees that in the PBA (PCI 3.0 §6.8.2.10), as it would on the device itself.
TEST_F(VfioPciFunctionTest, PbaShowsWhatAMaskedVectorHolds) {
  ASSERT_NO_FATAL_FAILURE(CreateWithOneMsixEntry(1));
  const uint64_t pba = kBar3Address + E::kMsixPbaOffset;
  const uint64_t control = MsixEntryAddress(1) + PCI_MSIX_ENTRY_VECTOR_CTRL;
  const uint64_t one = 1;
  ASSERT_EQ(::write(sink_.vectors()[0]->event_fd(), &one, sizeof(one)), 8);  // the device fires
  EXPECT_EQ(BusRead(mmio_, pba), 0u) << "unmasked: the irqfd delivers it, nothing is pending";
  ASSERT_TRUE(BusWrite(mmio_, control, uint32_t{PCI_MSIX_ENTRY_CTRL_MASKBIT}));
  EXPECT_EQ(BusRead(mmio_, pba), 0b10u);
  uint64_t count = 0;
  ASSERT_EQ(::read(sink_.vectors()[0]->event_fd(), &count, sizeof(count)), 8);  // consumed
  EXPECT_EQ(BusRead(mmio_, pba), 0u);
}

TEST_F(VfioPciFunctionTest, MsixDisableRestoresIntx) {
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
  SetMsixControl(PCI_MSIX_FLAGS_ENABLE);
  state_->irq_calls.clear();
  state_->unmask_calls.clear();
  SetMsixControl(0);
  ASSERT_EQ(state_->irq_calls.size(), 2u);
  EXPECT_EQ(state_->irq_calls[0].index, static_cast<uint32_t>(VFIO_PCI_MSIX_IRQ_INDEX));
  EXPECT_THAT(state_->irq_calls[0].fds, IsEmpty());  // DATA_NONE
  EXPECT_EQ(state_->irq_calls[1].index, static_cast<uint32_t>(VFIO_PCI_INTX_IRQ_INDEX));
  EXPECT_THAT(state_->irq_calls[1].fds, ElementsAre(sink_.intx()[0]->trigger_fd()));
  EXPECT_EQ(state_->unmask_calls.size(), 1u);
}

TEST_F(VfioPciFunctionTest, MsiEnableAllocatesRoutesAndHandsTheVectorToVfio) {
  Create();
  const uint32_t msi = E::kMsi;
  WriteConfig(msi + PCI_MSI_ADDRESS_LO, static_cast<uint32_t>(kMessage0.address));
  WriteConfig(msi + PCI_MSI_ADDRESS_HI, 0);
  WriteConfig(msi + PCI_MSI_DATA_64, kMessage0.data, 2);
  EXPECT_EQ(ReadConfig(msi + PCI_MSI_ADDRESS_LO), kMessage0.address);
  EXPECT_THAT(sink_.vectors(), IsEmpty());
  EXPECT_THAT(state_->config_writes, IsEmpty());  // MSI is virtualized, never the device's

  state_->irq_calls.clear();
  WriteConfig(msi + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE, 2);
  EXPECT_EQ(ReadConfig(msi + PCI_MSI_FLAGS, 2), PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_64BIT);
  ASSERT_EQ(sink_.vectors().size(), 1u);
  EXPECT_EQ(sink_.vectors()[0]->messages(), std::vector<MsiMessage>{kMessage0});
  ASSERT_EQ(state_->irq_calls.size(), 2u);
  EXPECT_EQ(state_->irq_calls[0].index, static_cast<uint32_t>(VFIO_PCI_INTX_IRQ_INDEX));
  EXPECT_THAT(state_->irq_calls[0].fds, IsEmpty());
  EXPECT_EQ(state_->irq_calls[1].index, static_cast<uint32_t>(VFIO_PCI_MSI_IRQ_INDEX));
  EXPECT_THAT(state_->irq_calls[1].fds, ElementsAre(sink_.vectors()[0]->event_fd()));

  // A new message while enabled is a new route, not a new VFIO setup.
  WriteConfig(msi + PCI_MSI_DATA_64, kMessage1.data, 2);
  EXPECT_EQ(sink_.vectors()[0]->messages().back().data, kMessage1.data);
  EXPECT_EQ(state_->irq_calls.size(), 2u);

  WriteConfig(msi + PCI_MSI_FLAGS, 0, 2);
  ASSERT_EQ(state_->irq_calls.size(), 4u);
  EXPECT_EQ(state_->irq_calls[2].index, static_cast<uint32_t>(VFIO_PCI_MSI_IRQ_INDEX));
  EXPECT_THAT(state_->irq_calls[2].fds, IsEmpty());
  EXPECT_EQ(state_->irq_calls[3].index, static_cast<uint32_t>(VFIO_PCI_INTX_IRQ_INDEX));
}

TEST_F(VfioPciFunctionTest, MultipleMessageMsiNumbersTheVectors) {
  // Multiple Message Capable = 4 vectors (log2 2 in bits 3:1, PCI 3.0 §6.8.1.3).
  state_->SetU16(E::kMsi + PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT | 2 << 1);
  state_->irqs[VFIO_PCI_MSI_IRQ_INDEX].count = 4;
  Create();
  const uint32_t msi = E::kMsi;
  WriteConfig(msi + PCI_MSI_ADDRESS_LO, static_cast<uint32_t>(kMessage0.address));
  WriteConfig(msi + PCI_MSI_DATA_64, 0x4040, 2);
  WriteConfig(msi + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | 2 << 4, 2);  // 4 vectors
  ASSERT_EQ(sink_.vectors().size(), 4u);
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(sink_.vectors()[i]->messages().back().data, 0x4040 | i);
  }
  std::optional<FakeVfioState::IrqCall> call = state_->LastIrqCall(VFIO_PCI_MSI_IRQ_INDEX);
  ASSERT_TRUE(call.has_value());
  EXPECT_EQ(call->fds, VectorFds());
}

TEST_F(VfioPciFunctionTest, ResetsAtCreationAndAfterTearingDownOnDestruction) {
  Create();
  EXPECT_EQ(state_->resets, 1);
  EXPECT_EQ(state_->events.front(), "reset");
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
  SetMsixControl(PCI_MSIX_FLAGS_ENABLE);
  ASSERT_FALSE(mapper_.live().empty());

  state_->events.clear();
  function_.reset();
  EXPECT_EQ(state_->resets, 2);
  // Interrupts off, then the guest mappings go (one unmap per area), then the reset.
  const std::vector<std::string>& events = state_->events;
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events.front(), absl::StrFormat("irqs %d start 0 count 0", VFIO_PCI_MSIX_IRQ_INDEX));
  for (size_t i = 1; i < 5; ++i) EXPECT_EQ(events[i].rfind("unmap ", 0), 0u) << events[i];
  EXPECT_EQ(events.back(), "reset");
  EXPECT_THAT(mapper_.live(), IsEmpty());
  EXPECT_FALSE(BusRead(mmio_, kBar0Address + 0x8000).has_value());
}

TEST_F(VfioPciFunctionTest, StopsDmaOnDestructionWithoutReset) {
  state_->supports_reset = false;
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
  function_.reset();
  EXPECT_EQ(state_->resets, 0);
  EXPECT_EQ(state_->ConfigU16(PCI_COMMAND), 0);
}

}  // namespace
}  // namespace minivmm::vfio_pci_function_testing
