#include "devices/legacy/serial_16550.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_format.h"
#include "devices/legacy/serial_16550_registers.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm {
namespace {

// A saved register must hold only bits the guest can set: `writable` for IER and MCR, whose
// other bits read 0 (PC16550D register descriptions), all 8 bits for the rest.
absl::Status CheckRegister(std::string_view field, uint32_t value, uint8_t writable = 0xff) {
  if ((value & ~uint32_t{writable}) == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("serial_16550 state: %s = %#x has bits outside %#x", field, value, writable));
}

absl::Status CheckState(const state::Serial16550State& s, size_t rx_capacity) {
  MINIVMM_RETURN_IF_ERROR(CheckRegister("ier", s.ier(), uart::kIerMask));
  MINIVMM_RETURN_IF_ERROR(CheckRegister("lcr", s.lcr()));
  MINIVMM_RETURN_IF_ERROR(CheckRegister("mcr", s.mcr(), uart::kMcrMask));
  MINIVMM_RETURN_IF_ERROR(CheckRegister("msr", s.msr()));
  MINIVMM_RETURN_IF_ERROR(CheckRegister("scr", s.scr()));
  MINIVMM_RETURN_IF_ERROR(CheckRegister("dll", s.dll()));
  MINIVMM_RETURN_IF_ERROR(CheckRegister("dlm", s.dlm()));
  if (s.rx_fifo().size() > rx_capacity) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "serial_16550 state: rx_fifo holds %d bytes, more than the receiver's %d (FIFOs %s)",
        s.rx_fifo().size(), rx_capacity, s.fifos_enabled() ? "enabled" : "disabled"));
  }
  return absl::OkStatus();
}

}  // namespace

Serial16550::Serial16550(IrqLine* irq, OutputSink sink) : irq_(irq), sink_(std::move(sink)) {
  absl::MutexLock lock(&mutex_);
  msr_ = ModemInputLines();
}

void Serial16550::Read(uint64_t offset, std::span<uint8_t> data) {
  if (data.size() != 1 || offset >= kPortSpan) {
    MINIVMM_LOG_GUEST_ERROR("serial: %d-byte read at offset %d ignored", data.size(), offset);
    return;
  }
  absl::MutexLock lock(&mutex_);
  data[0] = ReadRegister(offset);
  UpdateIrq();
}

void Serial16550::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() != 1 || offset >= kPortSpan) {
    MINIVMM_LOG_GUEST_ERROR("serial: %d-byte write at offset %d ignored", data.size(), offset);
    return;
  }
  bool transmit;
  {
    absl::MutexLock lock(&mutex_);
    transmit = WriteRegister(offset, data[0]);
    UpdateIrq();
  }
  // The guest's write instruction completes only after this returns, so bytes the guest
  // serializes (the 8250 driver holds its port lock) reach the sink in order.
  if (transmit && sink_) sink_(data);
}

size_t Serial16550::EnqueueInput(std::span<const uint8_t> bytes) {
  absl::MutexLock lock(&mutex_);
  if (loopback()) return 0;
  size_t accepted = std::min(bytes.size(), RxSpace());
  rx_fifo_.insert(rx_fifo_.end(), bytes.begin(), bytes.begin() + accepted);
  UpdateIrq();
  return accepted;
}

state::Serial16550State Serial16550::SaveState() const {
  absl::MutexLock lock(&mutex_);
  state::Serial16550State s;
  s.set_ier(ier_);
  s.set_lcr(lcr_);
  s.set_mcr(mcr_);
  s.set_msr(msr_);
  s.set_scr(scr_);
  s.set_dll(dll_);
  s.set_dlm(dlm_);
  s.set_fifos_enabled(fifos_enabled_);
  s.set_overrun(overrun_);
  s.set_thr_empty_pending(thr_empty_pending_);
  s.set_rx_fifo(std::string(rx_fifo_.begin(), rx_fifo_.end()));
  return s;
}

absl::Status Serial16550::RestoreState(const state::Serial16550State& s) {
  // Without FIFOs the receiver holds one character (see RxSpace), so a longer saved queue
  // could not have come from this UART.
  MINIVMM_RETURN_IF_ERROR(CheckState(s, s.fifos_enabled() ? kRxFifoCapacity : 1));
  absl::MutexLock lock(&mutex_);
  ier_ = static_cast<uint8_t>(s.ier());
  lcr_ = static_cast<uint8_t>(s.lcr());
  mcr_ = static_cast<uint8_t>(s.mcr());
  msr_ = static_cast<uint8_t>(s.msr());
  scr_ = static_cast<uint8_t>(s.scr());
  dll_ = static_cast<uint8_t>(s.dll());
  dlm_ = static_cast<uint8_t>(s.dlm());
  fifos_enabled_ = s.fifos_enabled();
  overrun_ = s.overrun();
  thr_empty_pending_ = s.thr_empty_pending();
  rx_fifo_.assign(s.rx_fifo().begin(), s.rx_fifo().end());
  UpdateIrq();
  return absl::OkStatus();
}

uint8_t Serial16550::ReadRegister(uint64_t offset) {
  switch (offset) {
    case uart::kRbrThr: {
      if (dlab()) return dll_;
      if (rx_fifo_.empty()) return 0;
      uint8_t value = rx_fifo_.front();
      rx_fifo_.pop_front();
      return value;
    }
    case uart::kIer:
      return dlab() ? dlm_ : ier_;
    case uart::kIirFcr: {
      uint8_t id = InterruptId();
      // Reading IIR clears the THRE interrupt only when it is the source reported (Table IV).
      if (id == uart::kIirThrEmpty) thr_empty_pending_ = false;
      return id | (fifos_enabled_ ? uart::kIirFifosEnabled : 0);
    }
    case uart::kLcr:
      return lcr_;
    case uart::kMcr:
      return mcr_;
    case uart::kLsr: {
      uint8_t value = LineStatus();
      overrun_ = false;  // error bits clear when LSR is read
      return value;
    }
    case uart::kMsr: {
      uint8_t value = msr_;
      msr_ &= ~uart::kMsrDeltaMask;  // change indications clear when MSR is read
      return value;
    }
    default:
      return scr_;
  }
}

bool Serial16550::WriteRegister(uint64_t offset, uint8_t value) {
  switch (offset) {
    case uart::kRbrThr:
      if (dlab()) {
        dll_ = value;
        return false;
      }
      // Transmission is instantaneous: THR is empty again at once, which raises THRE.
      thr_empty_pending_ = true;
      if (!loopback()) return true;
      ReceiveLoopback(value);
      return false;
    case uart::kIer:
      if (dlab()) {
        dlm_ = value;
      } else {
        WriteInterruptEnable(value);
      }
      return false;
    case uart::kIirFcr:
      WriteFifoControl(value);
      return false;
    case uart::kLcr:
      lcr_ = value;
      return false;
    case uart::kMcr:
      WriteModemControl(value);
      return false;
    case uart::kLsr:
    case uart::kMsr:
      // Writable only for factory testing (PC16550D LSR/MSR descriptions); ignored.
      return false;
    default:
      scr_ = value;
      return false;
  }
}

void Serial16550::WriteInterruptEnable(uint8_t value) {
  uint8_t enabled = (value & uart::kIerMask) & ~ier_;
  ier_ = value & uart::kIerMask;
  // Enabling ETBEI while THR is empty raises THRE even if an IIR read had cleared it: Linux's
  // 8250 startup test toggles IER.THRI and marks the UART buggy if THRE does not reassert.
  if (enabled & uart::kIerThrEmpty) thr_empty_pending_ = true;
}

void Serial16550::WriteFifoControl(uint8_t value) {
  bool enable = (value & uart::kFcrEnableFifos) != 0;
  // Changing FCR bit 0 resets both FIFOs; bits 1-2 act only when bit 0 is written as 1.
  // The receive trigger level (bits 7:6) is not modelled: data-available is raised from the
  // first byte, so no character-timeout interrupt is ever needed.
  if (enable != fifos_enabled_ || (enable && (value & uart::kFcrClearRx))) rx_fifo_.clear();
  fifos_enabled_ = enable;
}

void Serial16550::WriteModemControl(uint8_t value) {
  mcr_ = value & uart::kMcrMask;
  uint8_t old_lines = msr_ & ~uart::kMsrDeltaMask;
  uint8_t new_lines = ModemInputLines();
  uint8_t changed = old_lines ^ new_lines;
  uint8_t deltas = 0;
  if (changed & uart::kMsrCts) deltas |= uart::kMsrDeltaCts;
  if (changed & uart::kMsrDsr) deltas |= uart::kMsrDeltaDsr;
  if ((old_lines & uart::kMsrRi) && !(new_lines & uart::kMsrRi)) deltas |= uart::kMsrTrailingEdgeRi;
  if (changed & uart::kMsrDcd) deltas |= uart::kMsrDeltaDcd;
  msr_ = (msr_ & uart::kMsrDeltaMask) | deltas | new_lines;
}

void Serial16550::ReceiveLoopback(uint8_t value) {
  // A character arriving at a full receiver is lost and flags an overrun (LSR bit 1).
  if (RxSpace() == 0) {
    overrun_ = true;
    return;
  }
  rx_fifo_.push_back(value);
}

uint8_t Serial16550::InterruptId() const {
  // Sources in priority order (PC16550D Table IV).
  if ((ier_ & uart::kIerLineStatus) && overrun_) return uart::kIirLineStatus;
  if ((ier_ & uart::kIerRxData) && !rx_fifo_.empty()) return uart::kIirRxData;
  if ((ier_ & uart::kIerThrEmpty) && thr_empty_pending_) return uart::kIirThrEmpty;
  if ((ier_ & uart::kIerModemStatus) && (msr_ & uart::kMsrDeltaMask)) return uart::kIirModemStatus;
  return uart::kIirNoInterrupt;
}

uint8_t Serial16550::LineStatus() const {
  // The transmitter never holds data, so THRE and TEMT are always set.
  uint8_t value = uart::kLsrThrEmpty | uart::kLsrTxEmpty;
  if (!rx_fifo_.empty()) value |= uart::kLsrDataReady;
  if (overrun_) value |= uart::kLsrOverrun;
  return value;
}

uint8_t Serial16550::ModemInputLines() const {
  // Outside loopback the other end is always ready: CTS, DSR and DCD asserted, no ring.
  if (!loopback()) return uart::kMsrCts | uart::kMsrDsr | uart::kMsrDcd;
  // In loopback the outputs feed the inputs: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
  uint8_t lines = 0;
  if (mcr_ & uart::kMcrRts) lines |= uart::kMsrCts;
  if (mcr_ & uart::kMcrDtr) lines |= uart::kMsrDsr;
  if (mcr_ & uart::kMcrOut1) lines |= uart::kMsrRi;
  if (mcr_ & uart::kMcrOut2) lines |= uart::kMsrDcd;
  return lines;
}

size_t Serial16550::RxSpace() const {
  // Without FIFOs the receiver holds a single character, as on a 16450.
  size_t capacity = fifos_enabled_ ? kRxFifoCapacity : 1;
  return rx_fifo_.size() >= capacity ? 0 : capacity - rx_fifo_.size();
}

bool Serial16550::dlab() const { return (lcr_ & uart::kLcrDlab) != 0; }

bool Serial16550::loopback() const { return (mcr_ & uart::kMcrLoop) != 0; }

void Serial16550::UpdateIrq() {
  // On a PC, OUT2 enables the buffer between INTR and the ISA IRQ; in loopback the OUT2 pin
  // is forced inactive (PC16550D MCR bit 4), so the IRQ stays low whatever is pending.
  bool level = InterruptId() != uart::kIirNoInterrupt && (mcr_ & uart::kMcrOut2) && !loopback();
  if (level == irq_level_) return;
  irq_level_ = level;
  irq_->SetLevel(level);
}

}  // namespace minivmm
