// Register layout of the 16550A UART, from the National Semiconductor PC16550D datasheet
// (June 1995): Table II "Summary of Registers" and the register descriptions that follow it.
#ifndef MINIVMM_DEVICES_LEGACY_SERIAL_16550_REGISTERS_H_
#define MINIVMM_DEVICES_LEGACY_SERIAL_16550_REGISTERS_H_

#include <cstdint>

namespace minivmm::uart {

// Register offsets from the port base (PC16550D Table I "Register Addresses"). Offsets 0 and
// 1 address the divisor latch instead while LCR.DLAB is set.
inline constexpr uint64_t kRbrThr = 0;  // receiver buffer (read) / transmitter holding (write)
inline constexpr uint64_t kIer = 1;     // interrupt enable
inline constexpr uint64_t kDll = 0;     // divisor latch LSB (DLAB = 1)
inline constexpr uint64_t kDlm = 1;     // divisor latch MSB (DLAB = 1)
inline constexpr uint64_t kIirFcr = 2;  // interrupt identification (read) / FIFO control (write)
inline constexpr uint64_t kLcr = 3;     // line control
inline constexpr uint64_t kMcr = 4;     // modem control
inline constexpr uint64_t kLsr = 5;     // line status
inline constexpr uint64_t kMsr = 6;     // modem status
inline constexpr uint64_t kScr = 7;     // scratch

// IER: bits 4-7 always read 0.
inline constexpr uint8_t kIerRxData = 0x01;       // ERBFI
inline constexpr uint8_t kIerThrEmpty = 0x02;     // ETBEI
inline constexpr uint8_t kIerLineStatus = 0x04;   // ELSI
inline constexpr uint8_t kIerModemStatus = 0x08;  // EDSSI
inline constexpr uint8_t kIerMask = 0x0f;

// IIR (Table IV "Interrupt Control Functions"): bit 0 clear means an interrupt is
// pending; bits 3:1 identify the highest-priority source; bits 7:6 mirror FCR bit 0.
inline constexpr uint8_t kIirNoInterrupt = 0x01;
inline constexpr uint8_t kIirLineStatus = 0x06;   // priority 1
inline constexpr uint8_t kIirRxData = 0x04;       // priority 2
inline constexpr uint8_t kIirThrEmpty = 0x02;     // priority 3
inline constexpr uint8_t kIirModemStatus = 0x00;  // priority 4
inline constexpr uint8_t kIirFifosEnabled = 0xc0;

// FCR: bits 1 and 2 are self-clearing and only act while bit 0 is written as 1.
inline constexpr uint8_t kFcrEnableFifos = 0x01;
inline constexpr uint8_t kFcrClearRx = 0x02;
inline constexpr uint8_t kFcrClearTx = 0x04;

// LCR.
inline constexpr uint8_t kLcrDlab = 0x80;

// MCR: bits 5-7 always read 0.
inline constexpr uint8_t kMcrDtr = 0x01;
inline constexpr uint8_t kMcrRts = 0x02;
inline constexpr uint8_t kMcrOut1 = 0x04;
inline constexpr uint8_t kMcrOut2 = 0x08;  // gates the INTR pin onto the ISA IRQ on a PC
inline constexpr uint8_t kMcrLoop = 0x10;
inline constexpr uint8_t kMcrMask = 0x1f;

// LSR.
inline constexpr uint8_t kLsrDataReady = 0x01;
inline constexpr uint8_t kLsrOverrun = 0x02;
inline constexpr uint8_t kLsrThrEmpty = 0x20;
inline constexpr uint8_t kLsrTxEmpty = 0x40;  // THR and transmitter shift register both empty

// MSR: the low nibble holds change indications, cleared when MSR is read.
inline constexpr uint8_t kMsrDeltaCts = 0x01;
inline constexpr uint8_t kMsrDeltaDsr = 0x02;
inline constexpr uint8_t kMsrTrailingEdgeRi = 0x04;
inline constexpr uint8_t kMsrDeltaDcd = 0x08;
inline constexpr uint8_t kMsrDeltaMask = 0x0f;
inline constexpr uint8_t kMsrCts = 0x10;
inline constexpr uint8_t kMsrDsr = 0x20;
inline constexpr uint8_t kMsrRi = 0x40;
inline constexpr uint8_t kMsrDcd = 0x80;

}  // namespace minivmm::uart

#endif  // MINIVMM_DEVICES_LEGACY_SERIAL_16550_REGISTERS_H_
