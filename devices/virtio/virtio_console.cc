#include "devices/virtio/virtio_console.h"

#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "devices/virtio/queue_server.h"
#include "devices/virtio/ring_features.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm::virtio {
namespace {

// PCI class 07 80 00: simple communication controller, "other" (QEMU's virtio-serial too).
constexpr uint32_t kPciClassCommunicationOther = 0x078000;

// struct virtio_console_config (§5.3.4): le16 cols, le16 rows, le32 max_nr_ports, le32 emerg_wr.
// The uapi struct is packed, so its C++ size is the spec's.
constexpr size_t kConfigSize = sizeof(virtio_console_config);
static_assert(kConfigSize == 12);
constexpr uint64_t kEmergWriteOffset = offsetof(virtio_console_config, emerg_wr);
static_assert(kEmergWriteOffset == 8);

// Output at most this much per transmit chain in one go; the rest of the chain follows in
// further calls of the sink. Bounds the span list, not the chain.
constexpr uint64_t kMaxOutputPerCall = 64 * 1024;

}  // namespace

VirtioConsole::VirtioConsole(OutputSink output) : output_(std::move(output)) {}

VirtioConsole::~VirtioConsole() { Reset(); }

uint16_t VirtioConsole::device_type() const { return VIRTIO_ID_CONSOLE; }
uint32_t VirtioConsole::pci_class_code() const { return kPciClassCommunicationOther; }
uint64_t VirtioConsole::features() const { return uint64_t{1} << VIRTIO_CONSOLE_F_EMERG_WRITE; }
size_t VirtioConsole::config_size() const { return kConfigSize; }

void VirtioConsole::ReadConfig(uint64_t /*offset*/, std::span<uint8_t> data) {
  // Without F_SIZE and F_MULTIPORT, cols, rows and max_nr_ports are not valid (§5.3.4), and
  // emerg_wr is write-only: every byte reads as zero.
  std::fill(data.begin(), data.end(), 0);
}

void VirtioConsole::WriteConfig(uint64_t offset, std::span<const uint8_t> data) {
  // §5.3.5.1: the device must accept emerg_wr writes at any time, even unconfigured, and
  // should output the lower byte written. Config fields are little-endian (§2.5), so that byte
  // is the one at emerg_wr's own offset, whatever the access width.
  if (offset > kEmergWriteOffset || offset + data.size() <= kEmergWriteOffset) {
    MINIVMM_LOG_GUEST_ERROR("%s: write to read-only config offset %d", std::string(Name()), offset);
    return;
  }
  if (output_) output_(data.subspan(kEmergWriteOffset - offset, 1));
}

absl::Status VirtioConsole::Activate(Activation activation) {
  absl::MutexLock lock(&mutex_);
  int input_fd;
  {
    absl::MutexLock input_lock(&input_mutex_);
    if (!input_event_.has_value()) {
      absl::StatusOr<EventFd> created = EventFd::Create("virtio-console input");
      if (!created.ok()) return created.status();
      input_event_ = std::move(*created);
    }
    input_fd = input_event_->fd();
  }
  const bool event_idx = (activation.features >> kRingEventIdxFeature) & 1;
  const bool indirect = (activation.features >> kRingIndirectDescFeature) & 1;
  for (const ActiveQueue& q : activation.queues) {
    std::optional<ServedQueue>* served = q.index == kReceiveQueue    ? &receive_
                                         : q.index == kTransmitQueue ? &transmit_
                                                                     : nullptr;
    if (served != nullptr) {
      served->emplace(ServedQueue{q, SplitVirtqueue(q.layout, event_idx, indirect, q.start_index)});
    }
  }
  activation_ = std::move(activation);
  broken_ = false;

  std::vector<DeviceWorker::Handler> handlers;
  if (transmit_) {
    const int kick_fd = transmit_->active.kick_fd;
    handlers.push_back({kick_fd, [this, kick_fd] {
                          DrainEventFd(kick_fd);
                          ProcessTransmit();
                        }});
  }
  if (receive_) {
    const int kick_fd = receive_->active.kick_fd;
    handlers.push_back({kick_fd, [this, kick_fd] {
                          DrainEventFd(kick_fd);
                          DeliverInput();
                        }});
    // Input that waited for a driver is looked at as soon as the worker runs: SendInput
    // signalled input_fd when it arrived, or did not know it yet.
    (void)SignalEventFd(input_fd);
    handlers.push_back({input_fd, [this, input_fd] {
                          DrainEventFd(input_fd);
                          DeliverInput();
                        }});
  }
  if (handlers.empty()) return absl::OkStatus();  // the driver enabled neither queue
  absl::StatusOr<std::unique_ptr<DeviceWorker>> worker =
      DeviceWorker::Start("virtio-console", std::move(handlers));
  if (!worker.ok()) return worker.status();
  worker_.Install(std::move(*worker));
  return absl::OkStatus();
}

void VirtioConsole::Reset() {
  worker_.Stop();  // first, without mutex_: the worker holds it while it serves a round
  absl::MutexLock lock(&mutex_);
  receive_.reset();
  transmit_.reset();
  activation_ = {};
  // pending_input_ is kept on purpose (see the header); input_event_ stays for the next worker.
}

size_t VirtioConsole::SendInput(std::span<const uint8_t> bytes) {
  absl::MutexLock lock(&input_mutex_);
  const size_t accepted = std::min(bytes.size(), kInputCapacity - pending_input_.size());
  pending_input_.insert(pending_input_.end(), bytes.begin(), bytes.begin() + accepted);
  if (accepted > 0 && input_event_.has_value()) (void)input_event_->Signal();
  return accepted;
}

void VirtioConsole::ProcessTransmit() {
  absl::MutexLock lock(&mutex_);
  if (!transmit_ || broken_ || !activation_.MayAccessMemory()) return;
  GuestMemory& memory = *activation_.memory;
  const Round round = ServeQueue(
      transmit_->queue, memory, transmit_->active, Name(), kQueueSize,
      [&](const DescriptorChain& chain) -> std::optional<uint32_t> {
        // §5.3.6.1: the driver must not put a device-writable buffer in a transmitq.
        if (chain.writable_bytes != 0) {
          MINIVMM_LOG_GUEST_ERROR("%s: transmitq chain %d has device-writable buffers",
                                  std::string(Name()), chain.head);
          return std::nullopt;
        }
        ChainReader reader(memory, chain);
        while (reader.remaining() > 0) {
          const std::vector<std::span<const uint8_t>> spans = reader.TakeSpans(kMaxOutputPerCall);
          if (spans.empty()) break;  // cannot happen for a parsed chain; never spin
          for (std::span<const uint8_t> span : spans) {
            if (output_) output_(span);
          }
        }
        return 0;  // nothing written into the chain (§2.7.8)
      });
  if (round == Round::kMore) (void)SignalEventFd(transmit_->active.kick_fd);
  if (round == Round::kBroken) MarkBroken();
}

void VirtioConsole::DeliverInput() {
  absl::MutexLock lock(&mutex_);
  if (!receive_ || broken_ || !activation_.MayAccessMemory()) return;
  GuestMemory& memory = *activation_.memory;
  SplitVirtqueue& queue = receive_->queue;
  // Like ServeQueue, but a chain is taken only when there is input for it: a receive buffer
  // stays with the device until it can be filled.
  absl::Status status;
  bool used = false;
  bool rearmed = false;
  int filled = 0;
  // Bounded like ServeQueue: kQueueSize chains a round. SendInput refills pending input from
  // other threads, so without the bound a fast input source could keep the worker here.
  while (status.ok() && HasPendingInput()) {
    if (filled == kQueueSize) {
      (void)SignalEventFd(receive_->active.kick_fd);  // another round, after a stop check
      break;
    }
    absl::StatusOr<std::optional<DescriptorChain>> chain = queue.PopAvailable(memory);
    if (!chain.ok()) {
      status = chain.status();
    } else if (!chain->has_value()) {
      if (rearmed) break;
      // Out of buffers with input waiting: ask for a kick on the next one (with EVENT_IDX the
      // driver stops notifying otherwise, §2.7.10), then look once more for a buffer added
      // before the request became visible.
      status = queue.EnableNotifications(memory, true);
      rearmed = true;
    } else if ((*chain)->readable_bytes != 0) {
      // §5.3.6.1: the driver must not put a device-readable buffer in a receiveq.
      status = absl::InvalidArgumentError(
          absl::StrFormat("receiveq chain %d has device-readable buffers", (*chain)->head));
    } else {
      rearmed = false;
      ++filled;
      const uint32_t written = FillFromPendingInput(memory, **chain);
      status = queue.PushUsed(memory, (*chain)->head, written);
      used = used || status.ok();
    }
  }
  if (used) {
    // As in ServeQueue: an unreadable used ring still gets the interrupt.
    absl::StatusOr<bool> wanted = queue.ShouldInterrupt(memory);
    if (!wanted.ok() || *wanted) receive_->active.signal_used();
  }
  if (!status.ok()) {
    MINIVMM_LOG_GUEST_ERROR("%s: queue %d: %s", std::string(Name()), kReceiveQueue,
                            status.ToString());
    MarkBroken();
  }
}

uint32_t VirtioConsole::FillFromPendingInput(GuestMemory& memory, const DescriptorChain& chain) {
  ChainWriter writer(memory, chain);
  absl::MutexLock lock(&input_mutex_);
  for (std::span<uint8_t> span : writer.TakeSpans(pending_input_.size())) {
    std::copy_n(pending_input_.begin(), span.size(), span.begin());
    pending_input_.erase(pending_input_.begin(), pending_input_.begin() + span.size());
  }
  // At most kInputCapacity bytes: fits the used element's 32-bit len.
  return static_cast<uint32_t>(writer.written());
}

bool VirtioConsole::HasPendingInput() {
  absl::MutexLock lock(&input_mutex_);
  return !pending_input_.empty();
}

void VirtioConsole::MarkBroken() {
  // Stop serving both queues until the driver resets the device (§2.1.2).
  broken_ = true;
  if (activation_.report_broken) activation_.report_broken();
}

}  // namespace minivmm::virtio
