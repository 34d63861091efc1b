// A 16550A UART (National Semiconductor PC16550D) as the PC's COM port: eight byte-wide
// registers, a receive FIFO fed by the host, and an instantaneous transmitter whose bytes go to
// an output sink. The guest's 8250 driver sees a plain 16550A.
#ifndef MINIVMM_DEVICES_LEGACY_SERIAL_16550_H_
#define MINIVMM_DEVICES_LEGACY_SERIAL_16550_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "devices/legacy/legacy_state.pb.h"
#include "vmm/core/bus.h"
#include "vmm/core/irq_line.h"

namespace minivmm {

class Serial16550 : public BusDevice {
 public:
  // Receives each transmitted byte. Called from vCPU threads without the device lock held,
  // possibly concurrently from two vCPUs, so it must be thread-safe; it may block (that
  // stalls only the transmitting vCPU, as a slow line would).
  using OutputSink = std::function<void(std::span<const uint8_t>)>;

  // Receive FIFO depth in FIFO mode. A real 16550A holds 16 bytes; Linux drains the FIFO until
  // LSR.DR clears, so a deeper one is invisible to it and absorbs host input bursts.
  static constexpr size_t kRxFifoCapacity = 64;
  // Port range (the lead registers COM1: 0x3f8, IRQ 4).
  static constexpr uint64_t kPortSpan = 8;

  // irq must be non-null and outlive the device. It is driven with
  // (interrupt pending && MCR.OUT2 && !MCR.LOOP), as the PC wires the UART's INTR pin.
  Serial16550(IrqLine* irq, OutputSink sink);

  std::string_view Name() const override { return "serial_16550"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Host input for the guest, from any non-vCPU thread. Returns how many leading bytes of
  // `bytes` were accepted: fewer than all when the receive FIFO fills, and none while the
  // guest holds the UART in loopback (the serial input is disconnected then). Callers keep the
  // rest and retry later (minivmm's main loop retries every 10 ms while input waits).
  size_t EnqueueInput(std::span<const uint8_t> bytes);

  // Snapshot and restore: every register, the pending THRE condition and the unread input.
  // RestoreState checks the whole message first and, on a bad field, changes nothing and names
  // the field; on success it drives the IRQ line to match the restored state.
  state::Serial16550State SaveState() const;
  absl::Status RestoreState(const state::Serial16550State& s);

 private:
  uint8_t ReadRegister(uint64_t offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Returns true when `value` was written to THR outside loopback, i.e. must go to the sink.
  bool WriteRegister(uint64_t offset, uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void WriteFifoControl(uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void WriteInterruptEnable(uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void WriteModemControl(uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void ReceiveLoopback(uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  uint8_t InterruptId() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  uint8_t LineStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  uint8_t ModemInputLines() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  size_t RxSpace() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  bool dlab() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  bool loopback() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Drives the IRQ line to match the current state. Runs under mutex_ so that level changes
  // from concurrent accesses reach the line in the order the state changed; this is safe
  // because an IrqLine only signals the interrupt controller and never calls back into devices.
  void UpdateIrq() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  IrqLine* const irq_;
  const OutputSink sink_;

  mutable absl::Mutex mutex_;
  uint8_t ier_ ABSL_GUARDED_BY(mutex_) = 0;
  uint8_t lcr_ ABSL_GUARDED_BY(mutex_) = 0;
  uint8_t mcr_ ABSL_GUARDED_BY(mutex_) = 0;
  uint8_t msr_ ABSL_GUARDED_BY(mutex_);
  uint8_t scr_ ABSL_GUARDED_BY(mutex_) = 0;
  uint8_t dll_ ABSL_GUARDED_BY(mutex_) = 1;  // divisor 1: 115200 baud from 1.8432 MHz
  uint8_t dlm_ ABSL_GUARDED_BY(mutex_) = 0;
  bool fifos_enabled_ ABSL_GUARDED_BY(mutex_) = false;
  bool overrun_ ABSL_GUARDED_BY(mutex_) = false;
  // The THRE interrupt condition: set when THR becomes empty (after every transmit, and on
  // enabling ETBEI), cleared by an IIR read that reports it.
  bool thr_empty_pending_ ABSL_GUARDED_BY(mutex_) = false;
  bool irq_level_ ABSL_GUARDED_BY(mutex_) = false;
  std::deque<uint8_t> rx_fifo_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace minivmm

#endif  // MINIVMM_DEVICES_LEGACY_SERIAL_16550_H_
