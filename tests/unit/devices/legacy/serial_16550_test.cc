#include "devices/legacy/serial_16550.h"

#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "devices/legacy/serial_16550_registers.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/legacy/port_io_helpers.h"
#include "tests/unit/testing/fake_irq_line.h"

namespace minivmm {
namespace {

using namespace uart;  // NOLINT(build/namespaces): register names keep the tests readable

class Serial16550Test : public ::testing::Test {
 protected:
  Serial16550Test()
      : uart_(&irq_, [this](std::span<const uint8_t> bytes) {
          output_.append(bytes.begin(), bytes.end());
        }) {}

  uint8_t In(uint64_t offset) { return InByte(uart_, offset); }
  void Out(uint64_t offset, uint8_t value) { OutByte(uart_, offset, value); }
  size_t Input(std::string_view text) {
    return uart_.EnqueueInput(
        std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }

  FakeIrqLine irq_;
  std::string output_;
  Serial16550 uart_;
};

TEST_F(Serial16550Test, RegistersStartAtDatasheetResetValues) {
  EXPECT_EQ(In(kIer), 0);
  EXPECT_EQ(In(kIirFcr), kIirNoInterrupt);
  EXPECT_EQ(In(kLcr), 0);
  EXPECT_EQ(In(kMcr), 0);
  EXPECT_EQ(In(kLsr), kLsrThrEmpty | kLsrTxEmpty);
  EXPECT_EQ(In(kMsr), kMsrCts | kMsrDsr | kMsrDcd);
  EXPECT_EQ(In(kScr), 0);
  EXPECT_FALSE(irq_.level());
}

TEST_F(Serial16550Test, DivisorLatchIsReachableOnlyWithDlabSet) {
  Out(kLcr, kLcrDlab | 0x03);
  Out(kDll, 0x0c);
  Out(kDlm, 0x01);
  EXPECT_EQ(In(kDll), 0x0c);
  EXPECT_EQ(In(kDlm), 0x01);
  EXPECT_TRUE(output_.empty()) << "a divisor write must not transmit";

  Out(kLcr, 0x03);
  Out(kIer, kIerRxData);
  EXPECT_EQ(In(kIer), kIerRxData);
  Out(kRbrThr, 'A');
  EXPECT_EQ(output_, "A");

  Out(kLcr, kLcrDlab | 0x03);
  EXPECT_EQ(In(kDll), 0x0c);
  EXPECT_EQ(In(kDlm), 0x01);
}

TEST_F(Serial16550Test, TransmittedBytesReachTheSinkInOrder) {
  for (char c : std::string_view("hello\n")) Out(kRbrThr, c);
  EXPECT_EQ(output_, "hello\n");
  EXPECT_EQ(In(kLsr) & (kLsrThrEmpty | kLsrTxEmpty), kLsrThrEmpty | kLsrTxEmpty);
}

TEST_F(Serial16550Test, IerKeepsOnlyItsLowNibble) {
  // Linux's 8250 autoconfig writes 0 and 0x0f to IER and expects to read them back.
  Out(kIer, 0xff);
  EXPECT_EQ(In(kIer), 0x0f);
  Out(kIer, 0);
  EXPECT_EQ(In(kIer), 0);
}

TEST_F(Serial16550Test, EnablingEtbeiRaisesThreInterrupt) {
  Out(kMcr, kMcrOut2);
  EXPECT_FALSE(irq_.level());
  Out(kIer, kIerThrEmpty);
  EXPECT_TRUE(irq_.level());
  EXPECT_EQ(In(kIirFcr), kIirThrEmpty);
}

TEST_F(Serial16550Test, ReadingIirClearsThreInterrupt) {
  Out(kMcr, kMcrOut2);
  Out(kIer, kIerThrEmpty);
  EXPECT_EQ(In(kIirFcr), kIirThrEmpty);
  EXPECT_FALSE(irq_.level());
  EXPECT_EQ(In(kIirFcr), kIirNoInterrupt);
}

TEST_F(Serial16550Test, ThrWriteReassertsThreInterrupt) {
  Out(kMcr, kMcrOut2);
  Out(kIer, kIerThrEmpty);
  In(kIirFcr);
  Out(kRbrThr, 'x');
  EXPECT_TRUE(irq_.level());
  EXPECT_EQ(In(kIirFcr), kIirThrEmpty);
  EXPECT_EQ(irq_.rising_edges(), 2);
}

TEST_F(Serial16550Test, ReenablingEtbeiReassertsThreAsLinuxStartupTestExpects) {
  // serial8250_do_startup: IER=THRI, read IIR, IER=0, IER=THRI, read IIR; both must report THRE.
  Out(kIer, kIerThrEmpty);
  EXPECT_EQ(In(kIirFcr) & 0x0f, kIirThrEmpty);
  Out(kIer, 0);
  Out(kIer, kIerThrEmpty);
  EXPECT_EQ(In(kIirFcr) & 0x0f, kIirThrEmpty);
}

TEST_F(Serial16550Test, ReceivedDataSetsDataReadyAndInterrupt) {
  Out(kIirFcr, kFcrEnableFifos);
  Out(kMcr, kMcrOut2);
  Out(kIer, kIerRxData);
  EXPECT_FALSE(irq_.level());
  EXPECT_EQ(Input("ab"), 2u);
  EXPECT_TRUE(irq_.level());
  EXPECT_EQ(In(kLsr) & kLsrDataReady, kLsrDataReady);
  EXPECT_EQ(In(kIirFcr), kIirFifosEnabled | kIirRxData);
  EXPECT_EQ(In(kRbrThr), 'a');
  EXPECT_TRUE(irq_.level()) << "one byte is still waiting";
  EXPECT_EQ(In(kRbrThr), 'b');
  EXPECT_FALSE(irq_.level());
  EXPECT_EQ(In(kLsr) & kLsrDataReady, 0);
  EXPECT_EQ(In(kIirFcr), kIirFifosEnabled | kIirNoInterrupt);
}

TEST_F(Serial16550Test, ReceivedDataOutranksThreAndIirReadLeavesThrePending) {
  Out(kIer, kIerRxData | kIerThrEmpty);
  Input("z");
  EXPECT_EQ(In(kIirFcr), kIirRxData);
  EXPECT_EQ(In(kIirFcr), kIirRxData) << "reading IIR does not clear data-available";
  In(kRbrThr);
  EXPECT_EQ(In(kIirFcr), kIirThrEmpty) << "THRE was not the source of the earlier reads";
}

TEST_F(Serial16550Test, OverrunRaisesLineStatusInterruptAboveAllOthers) {
  Out(kIer, kIerMask);
  Out(kMcr, kMcrLoop);  // FIFOs off: the receiver holds one byte
  Out(kRbrThr, '1');
  Out(kRbrThr, '2');
  EXPECT_EQ(In(kIirFcr), kIirLineStatus);
  EXPECT_EQ(In(kLsr), kLsrThrEmpty | kLsrTxEmpty | kLsrDataReady | kLsrOverrun);
  EXPECT_EQ(In(kLsr) & kLsrOverrun, 0) << "reading LSR clears OE";
  EXPECT_EQ(In(kIirFcr), kIirRxData);
  EXPECT_EQ(In(kRbrThr), '1') << "the byte that arrived at a full receiver is lost";
}

TEST_F(Serial16550Test, ModemStatusChangeRaisesLowestPriorityInterrupt) {
  Out(kIer, kIerModemStatus);
  EXPECT_EQ(In(kIirFcr), kIirNoInterrupt);
  Out(kMcr, kMcrLoop);  // CTS, DSR and DCD all drop
  EXPECT_EQ(In(kIirFcr), kIirModemStatus);
  EXPECT_EQ(In(kMsr), kMsrDeltaCts | kMsrDeltaDsr | kMsrDeltaDcd);
  EXPECT_EQ(In(kIirFcr), kIirNoInterrupt) << "reading MSR clears the change bits";
}

TEST_F(Serial16550Test, IirReportsFifoEnableInTopBits) {
  Out(kIirFcr, kFcrEnableFifos);
  EXPECT_EQ(In(kIirFcr), kIirFifosEnabled | kIirNoInterrupt);
  Out(kIirFcr, 0);
  EXPECT_EQ(In(kIirFcr), kIirNoInterrupt);
}

TEST_F(Serial16550Test, FullFifoRefusesFurtherInputUntilGuestReads) {
  Out(kIirFcr, kFcrEnableFifos);
  std::string burst(Serial16550::kRxFifoCapacity + 10, 'q');
  EXPECT_EQ(Input(burst), Serial16550::kRxFifoCapacity);
  EXPECT_EQ(Input("r"), 0u);
  EXPECT_EQ(In(kLsr) & kLsrOverrun, 0) << "refused host input is not an overrun";
  In(kRbrThr);
  EXPECT_EQ(Input("rs"), 1u);
}

TEST_F(Serial16550Test, WithoutFifosReceiverHoldsOneByte) {
  EXPECT_EQ(Input("ab"), 1u);
  EXPECT_EQ(In(kRbrThr), 'a');
}

TEST_F(Serial16550Test, FifoControlClearsReceiver) {
  Out(kIirFcr, kFcrEnableFifos);
  Input("abc");
  Out(kIirFcr, kFcrEnableFifos | kFcrClearRx | kFcrClearTx);
  EXPECT_EQ(In(kLsr) & kLsrDataReady, 0);
}

TEST_F(Serial16550Test, LoopbackSendsTransmittedBytesToReceiverNotSink) {
  Out(kIirFcr, kFcrEnableFifos);
  Out(kMcr, kMcrLoop);
  Out(kRbrThr, 'x');
  EXPECT_TRUE(output_.empty());
  EXPECT_EQ(In(kLsr) & kLsrDataReady, kLsrDataReady);
  EXPECT_EQ(In(kRbrThr), 'x');
  Out(kMcr, 0);
  Out(kRbrThr, 'y');
  EXPECT_EQ(output_, "y");
}

TEST_F(Serial16550Test, LoopbackFeedsModemControlToModemStatus) {
  // Linux's 8250 autoconfig writes MCR = LOOP | OUT2 | RTS and expects DCD | CTS.
  Out(kMcr, kMcrLoop | kMcrOut2 | kMcrRts);
  EXPECT_EQ(In(kMsr) & 0xf0, kMsrDcd | kMsrCts);
  Out(kMcr, kMcrLoop | kMcrDtr | kMcrOut1);
  EXPECT_EQ(In(kMsr) & 0xf0, kMsrDsr | kMsrRi);
  Out(kMcr, kMcrLoop);
  EXPECT_EQ(In(kMsr) & kMsrTrailingEdgeRi, kMsrTrailingEdgeRi);
  Out(kMcr, 0);
  EXPECT_EQ(In(kMsr) & 0xf0, kMsrCts | kMsrDsr | kMsrDcd);
}

TEST_F(Serial16550Test, LoopbackRefusesHostInput) {
  Out(kMcr, kMcrLoop);
  EXPECT_EQ(Input("a"), 0u);
  Out(kMcr, 0);
  EXPECT_EQ(Input("a"), 1u);
}

TEST_F(Serial16550Test, Out2GatesTheIrqLine) {
  Out(kIer, kIerThrEmpty);
  EXPECT_EQ(In(kIirFcr) & kIirNoInterrupt, 0);  // pending, but OUT2 is clear
  Out(kIer, 0);
  Out(kIer, kIerThrEmpty);
  EXPECT_FALSE(irq_.level());
  Out(kMcr, kMcrOut2);
  EXPECT_TRUE(irq_.level());
  Out(kMcr, 0);
  EXPECT_FALSE(irq_.level());
  EXPECT_EQ(irq_.rising_edges(), 1);
}

TEST_F(Serial16550Test, LoopbackKeepsTheIrqLineLow) {
  Out(kIer, kIerThrEmpty);
  Out(kMcr, kMcrOut2 | kMcrLoop);
  EXPECT_FALSE(irq_.level());
  Out(kMcr, kMcrOut2);
  EXPECT_TRUE(irq_.level());
}

TEST_F(Serial16550Test, ScratchRegisterHoldsAnyValue) {
  Out(kScr, 0xa5);
  EXPECT_EQ(In(kScr), 0xa5);
}

TEST_F(Serial16550Test, WritesToLineAndModemStatusAreIgnored) {
  Out(kLsr, 0);
  Out(kMsr, 0);
  EXPECT_EQ(In(kLsr), kLsrThrEmpty | kLsrTxEmpty);
  EXPECT_EQ(In(kMsr), kMsrCts | kMsrDsr | kMsrDcd);
}

TEST_F(Serial16550Test, WideAccessIsIgnored) {
  uint8_t wide[2] = {0x12, 0x34};
  uart_.Write(kScr, wide);
  EXPECT_EQ(In(kScr), 0);
  uart_.Read(kScr, wide);
  EXPECT_EQ(wide[0], 0x12);
}

}  // namespace
}  // namespace minivmm
