// Serial16550::SaveState/RestoreState: a restored UART looks the same to the guest.
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "devices/legacy/legacy_state.pb.h"
#include "devices/legacy/serial_16550.h"
#include "devices/legacy/serial_16550_registers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/legacy/port_io_helpers.h"
#include "tests/unit/testing/fake_irq_line.h"

namespace minivmm {
namespace {

using namespace uart;  // NOLINT(build/namespaces): register names keep the tests readable
using ::testing::HasSubstr;

void Input(Serial16550& uart, std::string_view text) {
  ASSERT_EQ(
      uart.EnqueueInput(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size())),
      text.size());
}

// Programs a UART the way Linux's 8250 driver leaves it (FIFOs on, 8N1 at a set divisor,
// OUT2 for the PC's IRQ, receive interrupts enabled) and gives it unread input.
void DriveIntoRunningState(Serial16550& uart) {
  OutByte(uart, kLcr, kLcrDlab | 0x03);
  OutByte(uart, kDll, 0x0c);
  OutByte(uart, kDlm, 0x01);
  OutByte(uart, kLcr, 0x03);
  OutByte(uart, kIirFcr, kFcrEnableFifos);
  OutByte(uart, kMcr, kMcrDtr | kMcrRts | kMcrOut2);
  OutByte(uart, kScr, 0x5a);
  OutByte(uart, kIer, kIerRxData | kIerLineStatus);
  Input(uart, "hi!");
}

TEST(Serial16550StateTest, RestoredUartReadsBackRegistersFifoAndIrq) {
  FakeIrqLine irq;
  Serial16550 uart(&irq, nullptr);
  DriveIntoRunningState(uart);
  ASSERT_TRUE(irq.level());
  ASSERT_EQ(InByte(uart, kRbrThr), 'h');  // the guest has read one byte of three
  const state::Serial16550State saved = uart.SaveState();

  FakeIrqLine restored_irq;
  Serial16550 restored(&restored_irq, nullptr);
  ASSERT_FALSE(restored_irq.level());
  ASSERT_TRUE(restored.RestoreState(saved).ok());
  EXPECT_EQ(restored.SaveState().SerializeAsString(), saved.SerializeAsString());

  // The interrupt the guest has not serviced is asserted again on the new line.
  EXPECT_TRUE(restored_irq.level());
  EXPECT_EQ(InByte(restored, kIer), kIerRxData | kIerLineStatus);
  EXPECT_EQ(InByte(restored, kIirFcr), kIirRxData | kIirFifosEnabled);
  EXPECT_EQ(InByte(restored, kLcr), 0x03);
  EXPECT_EQ(InByte(restored, kMcr), kMcrDtr | kMcrRts | kMcrOut2);
  EXPECT_EQ(InByte(restored, kScr), 0x5a);
  EXPECT_EQ(InByte(restored, kLsr), kLsrDataReady | kLsrThrEmpty | kLsrTxEmpty);
  EXPECT_EQ(InByte(restored, kRbrThr), 'i');
  EXPECT_EQ(InByte(restored, kRbrThr), '!');
  EXPECT_EQ(InByte(restored, kLsr), kLsrThrEmpty | kLsrTxEmpty);
  EXPECT_FALSE(restored_irq.level()) << "draining the FIFO deasserts the restored IRQ";
  OutByte(restored, kLcr, kLcrDlab | 0x03);
  EXPECT_EQ(InByte(restored, kDll), 0x0c);
  EXPECT_EQ(InByte(restored, kDlm), 0x01);
}

TEST(Serial16550StateTest, RestoredPendingThrEmptyInterruptIsReportedOnce) {
  FakeIrqLine irq;
  Serial16550 uart(&irq, nullptr);
  OutByte(uart, kMcr, kMcrOut2);
  OutByte(uart, kIer, kIerThrEmpty);  // raises THRE at once
  ASSERT_TRUE(irq.level());

  FakeIrqLine restored_irq;
  Serial16550 restored(&restored_irq, nullptr);
  ASSERT_TRUE(restored.RestoreState(uart.SaveState()).ok());
  EXPECT_TRUE(restored_irq.level());
  EXPECT_EQ(InByte(restored, kIirFcr), kIirThrEmpty);
  EXPECT_FALSE(restored_irq.level());
  EXPECT_EQ(InByte(restored, kIirFcr), kIirNoInterrupt);
}

TEST(Serial16550StateTest, RefusesOversizedFifoAndOutOfRangeRegistersChangingNothing) {
  FakeIrqLine irq;
  Serial16550 uart(&irq, nullptr);
  DriveIntoRunningState(uart);
  const std::string before = uart.SaveState().SerializeAsString();

  state::Serial16550State too_long = uart.SaveState();
  too_long.set_ier(0);  // would deassert the IRQ if applied
  too_long.set_rx_fifo(std::string(Serial16550::kRxFifoCapacity + 1, 'x'));
  absl::Status status = uart.RestoreState(too_long);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("rx_fifo"));

  state::Serial16550State no_fifo = uart.SaveState();
  no_fifo.set_fifos_enabled(false);  // a 16450-style receiver holds one byte, not three
  EXPECT_THAT(uart.RestoreState(no_fifo).message(), HasSubstr("rx_fifo"));

  state::Serial16550State wide = uart.SaveState();
  wide.set_lcr(0x103);
  EXPECT_THAT(uart.RestoreState(wide).message(), HasSubstr("lcr"));
  state::Serial16550State reserved = uart.SaveState();
  reserved.set_ier(0x10);  // IER bits 7:4 are hardwired to 0
  EXPECT_THAT(uart.RestoreState(reserved).message(), HasSubstr("ier"));

  EXPECT_EQ(uart.SaveState().SerializeAsString(), before);
  EXPECT_TRUE(irq.level());
  EXPECT_EQ(InByte(uart, kRbrThr), 'h');
}

}  // namespace
}  // namespace minivmm
