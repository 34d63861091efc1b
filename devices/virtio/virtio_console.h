// virtio-console (virtio 1.2 §5.3) with a single port and no VIRTIO_CONSOLE_F_MULTIPORT: the
// guest's /dev/hvc0. Guest output (transmitq) goes to an output sink; host input is buffered
// here and copied into the receive buffers the driver posts. A worker thread serves both queues,
// so no console I/O runs on a vCPU thread.
//
// Offers VIRTIO_CONSOLE_F_EMERG_WRITE (a byte written to emerg_wr is output at once, even
// before the driver set the device up: early boot and last-gasp output, §5.3.5). Does not
// offer VIRTIO_CONSOLE_F_SIZE: the host terminal's size is not known here, and the spec and
// Linux have disagreed on the order of cols and rows, so the size fields read as zero.
#ifndef MINIVMM_DEVICES_VIRTIO_VIRTIO_CONSOLE_H_
#define MINIVMM_DEVICES_VIRTIO_VIRTIO_CONSOLE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "devices/virtio/device_worker.h"
#include "devices/virtio/virtio_device.h"
#include "vmm/base/event_fd.h"

namespace minivmm::virtio {

class VirtioConsole : public VirtioDevice {
 public:
  // Receives guest output in order. Called from the device's worker thread (transmitq) and from
  // vCPU threads (emerg_wr), so it must be thread-safe; it may block, which stalls only the
  // console (the guest sees its transmit buffers come back later).
  using OutputSink = std::function<void(std::span<const uint8_t>)>;

  // Port 0's queues (§5.3.2): receiveq carries host input to the guest, transmitq guest output.
  static constexpr uint16_t kReceiveQueue = 0;
  static constexpr uint16_t kTransmitQueue = 1;
  static constexpr uint16_t kQueueSize = 64;
  // Host input held while the guest has no receive buffers posted (or no driver at all).
  static constexpr size_t kInputCapacity = 4096;

  explicit VirtioConsole(OutputSink output);
  ~VirtioConsole() override;  // joins the worker

  std::string_view Name() const override { return "virtio-console"; }
  uint16_t device_type() const override;
  uint32_t pci_class_code() const override;
  uint64_t features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize, kQueueSize}; }
  size_t config_size() const override;
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) override;
  void WriteConfig(uint64_t offset, std::span<const uint8_t> data) override;
  absl::Status Activate(Activation activation) override;
  // Stops the worker. Input not yet delivered stays buffered for the next driver: keystrokes
  // typed while the guest reboots reach the next boot's console instead of being lost.
  void Reset() override;

  // Host input for the guest, from any thread. Returns how many leading bytes of `bytes` were
  // accepted: fewer than all once kInputCapacity bytes wait for the guest. Callers keep the
  // rest and retry later (the contract of Serial16550::EnqueueInput).
  size_t SendInput(std::span<const uint8_t> bytes);

  // Worker handlers, public for tests: output available transmit buffers; move pending input
  // into available receive buffers. Each serves one bounded round (kQueueSize chains) and
  // signals its fd again when there is more, so a guest cannot keep the worker for good.
  void ProcessTransmit();
  void DeliverInput();

 private:
  // One queue being served: what the transport handed over, and our side of the ring.
  struct ServedQueue {
    ActiveQueue active;
    SplitVirtqueue queue;
  };

  // Copies as much pending input as fits into the chain's writable part; returns the count.
  uint32_t FillFromPendingInput(GuestMemory& memory, const DescriptorChain& chain)
      ABSL_LOCKS_EXCLUDED(input_mutex_);
  bool HasPendingInput() ABSL_LOCKS_EXCLUDED(input_mutex_);
  void MarkBroken() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const OutputSink output_;

  // Activation state, against Reset from a vCPU thread. Taken before input_mutex_.
  absl::Mutex mutex_;
  Activation activation_ ABSL_GUARDED_BY(mutex_);
  std::optional<ServedQueue> receive_ ABSL_GUARDED_BY(mutex_);
  std::optional<ServedQueue> transmit_ ABSL_GUARDED_BY(mutex_);
  bool broken_ ABSL_GUARDED_BY(mutex_) = false;  // the driver broke the protocol; stop
  WorkerSlot worker_;  // not under mutex_: Reset stops the worker before it takes mutex_

  // Host input, kept apart from mutex_ so that SendInput never waits behind a slow sink.
  absl::Mutex input_mutex_;
  std::deque<uint8_t> pending_input_ ABSL_GUARDED_BY(input_mutex_);
  // eventfd that wakes the worker when input arrives. Created on the first activation and kept
  // until destruction, so a worker never sees it closed.
  std::optional<EventFd> input_event_ ABSL_GUARDED_BY(input_mutex_);
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_VIRTIO_CONSOLE_H_
