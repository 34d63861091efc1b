#include "devices/virtio/virtio_net.h"

#include <linux/if_tun.h>
#include <linux/virtio_ids.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_format.h"
#include "devices/virtio/queue_server.h"
#include "devices/virtio/virtio_net_control.h"
#include "devices/virtio/ring_features.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm::virtio {
namespace {

// PCI class 02 00 00: network controller, Ethernet.
constexpr uint32_t kPciClassEthernet = 0x020000;
// Frames one round moves before the worker turns to other work (vhost-net's packet weight is
// the same 256).
constexpr int kFramesPerRound = VirtioNet::kQueueSize;

bool Has(uint64_t features, int bit) { return (features >> bit) & 1; }

// struct virtio_net_config (§5.1.4): u8 mac[6], le16 status, le16 max_virtqueue_pairs, ...
constexpr size_t kConfigStatusOffset = 6;
constexpr size_t kConfigMaxQueuePairsOffset = 8;

std::array<uint8_t, VirtioNet::kConfigSize> MakeConfig(const std::array<uint8_t, 6>& mac) {
  std::array<uint8_t, VirtioNet::kConfigSize> config{};
  std::copy(mac.begin(), mac.end(), config.begin());
  // The link is always up: the tap's carrier is not followed. (Little-endian le16s.)
  config[kConfigStatusOffset] = kNetStatusLinkUp;
  // One queue pair; the field is read only with MQ or RSS, neither offered.
  config[kConfigMaxQueuePairsOffset] = 1;
  return config;
}

// The next available chain. When the ring is empty, asks the driver for a kick on its next
// buffer and looks once more, as ServeQueue does (with EVENT_IDX the driver stops kicking
// unless avail_event is published, §2.7.10). nullopt: empty, and the driver will kick.
absl::StatusOr<std::optional<DescriptorChain>> PopOrArm(SplitVirtqueue& ring, GuestMemory& memory) {
  absl::StatusOr<std::optional<DescriptorChain>> chain = ring.PopAvailable(memory);
  if (!chain.ok() || chain->has_value()) return chain;
  MINIVMM_RETURN_IF_ERROR(ring.EnableNotifications(memory, true));
  return ring.PopAvailable(memory);
}

// Host iovecs for the device-writable bytes of a receive chain, followed by one byte of
// `spare`: a read never says how long a frame was when it did not fit (tun_chr_read_iter clamps
// the count to the buffer), so a frame that reaches the spare byte did not fit. At most
// IOV_MAX iovecs in all; a frame that does not fit in those is dropped like any frame too long
// for its buffer.
std::vector<iovec> ReceiveIovecs(GuestMemory& memory, const DescriptorChain& chain,
                                 uint8_t* spare) {
  ChainWriter writer(memory, chain);
  std::vector<iovec> iov;
  for (std::span<uint8_t> span : writer.TakeSpans(chain.writable_bytes)) {
    if (iov.size() == IOV_MAX - 1) break;
    iov.push_back({span.data(), span.size()});
  }
  iov.push_back({spare, 1});
  return iov;
}

// Stores `value` at byte `offset` of a frame scattered over iov (the header may straddle
// descriptors, §2.6.4: the driver may split a buffer anywhere).
void PokeFrame(std::span<const iovec> iov, size_t offset, uint8_t value) {
  for (const iovec& v : iov) {
    if (offset < v.iov_len) {
      static_cast<uint8_t*>(v.iov_base)[offset] = value;
      return;
    }
    offset -= v.iov_len;
  }
}

// Reads one frame into iov: its length, or as much of it as fits. -1 with errno on failure.
ssize_t ReadFrame(int fd, std::span<const iovec> iov) {
  ssize_t n;
  do {
    n = ::readv(fd, iov.data(), static_cast<int>(iov.size()));
  } while (n < 0 && errno == EINTR);
  return n;
}

uint64_t TotalLength(std::span<const iovec> iov) {
  uint64_t total = 0;
  for (const iovec& v : iov) total += v.iov_len;
  return total;
}

}  // namespace

unsigned TunOffloadsFor(uint64_t features) {
  if (!Has(features, kNetFeatureGuestCsum)) return 0;
  unsigned offloads = TUN_F_CSUM;
  if (Has(features, kNetFeatureGuestTso4)) offloads |= TUN_F_TSO4;
  if (Has(features, kNetFeatureGuestTso6)) offloads |= TUN_F_TSO6;
  if ((offloads & (TUN_F_TSO4 | TUN_F_TSO6)) && Has(features, kNetFeatureGuestEcn)) {
    offloads |= TUN_F_TSO_ECN;
  }
  return offloads;
}

VirtioNet::VirtioNet(std::shared_ptr<NetBackend> backend, std::array<uint8_t, 6> mac)
    : backend_(std::move(backend)), config_(MakeConfig(mac)) {}

uint16_t VirtioNet::device_type() const { return VIRTIO_ID_NET; }
uint32_t VirtioNet::pci_class_code() const { return kPciClassEthernet; }

uint64_t VirtioNet::features() const {
  // Everything a tap with IFF_VNET_HDR handles by itself: it takes partial checksums and TSO
  // frames (with ECN) from the guest, and hands them to the guest once TUNSETOFFLOAD allows.
  // No UFO or USO: kept to what every tap takes (TUN_F_USO4/6 are recent, UFO deprecated).
  constexpr int kOffered[] = {
      kNetFeatureCsum,      kNetFeatureGuestCsum, kNetFeatureMac,      kNetFeatureGuestTso4,
      kNetFeatureGuestTso6, kNetFeatureGuestEcn,  kNetFeatureHostTso4, kNetFeatureHostTso6,
      kNetFeatureHostEcn,   kNetFeatureStatus,    kNetFeatureCtrlVq,   kNetFeatureGuestAnnounce,
  };
  uint64_t features = 0;
  for (int bit : kOffered) features |= uint64_t{1} << bit;
  return features;
}

void VirtioNet::ReadConfig(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (offset >= config_.size()) return;
  std::array<uint8_t, kConfigSize> config = config_;
  const uint16_t status = status_.load(std::memory_order_acquire);
  config[kConfigStatusOffset] = static_cast<uint8_t>(status);  // le16
  config[kConfigStatusOffset + 1] = static_cast<uint8_t>(status >> 8);
  const size_t n = std::min<size_t>(data.size(), config.size() - offset);
  std::memcpy(data.data(), config.data() + offset, n);
}

void VirtioNet::AnnounceMove() {
  absl::MutexLock lock(&mutex_);
  if (memory_ == nullptr || !Has(features_, kNetFeatureGuestAnnounce) || !ctrl_ ||
      !signal_config_change_) {
    return;  // a driver that cannot acknowledge is not asked
  }
  status_.fetch_or(kNetStatusAnnounce, std::memory_order_acq_rel);
  signal_config_change_();
  Log(LogLevel::kInfo, "virtio-net (%s): asked the guest to announce where it now runs",
      std::string(backend_->name()));
}

void VirtioNet::ProcessControl() {
  absl::MutexLock lock(&mutex_);
  if (!ctrl_ || broken_ || !MayAccessMemory()) return;
  GuestMemory& memory = *memory_;
  const Round round = ServeQueue(
      ctrl_->ring, memory, ctrl_->active, "virtio-net control", kControlQueueSize,
      [&](const DescriptorChain& chain) ABSL_NO_THREAD_SAFETY_ANALYSIS -> std::optional<uint32_t> {
        std::optional<NetControlResult> result = HandleNetControl(memory, chain);
        if (!result) return std::nullopt;
        if (result->command == NetControlCommand::kAnnounceAck &&
            (status_.fetch_and(~kNetStatusAnnounce) & kNetStatusAnnounce) != 0) {
          Log(LogLevel::kInfo, "virtio-net (%s): the guest announced itself",
              std::string(backend_->name()));
        }
        return result->written;
      });
  if (round == Round::kMore) (void)SignalEventFd(ctrl_->active.kick_fd);
  if (round == Round::kBroken) {
    broken_ = true;
    if (report_broken_) report_broken_();
  }
}

NetCounters VirtioNet::counters() const {
  absl::MutexLock lock(&mutex_);
  return counters_;
}

absl::Status VirtioNet::Activate(Activation activation) {
  absl::MutexLock lock(&mutex_);
  // What the guest can receive is what it negotiated (§5.1.6.4): ask the backend for no more.
  if (absl::Status set = backend_->SetOffloads(TunOffloadsFor(activation.features)); !set.ok()) {
    return WithContext(set, absl::StrFormat("virtio-net (%s)", std::string(backend_->name())));
  }
  memory_ = activation.memory;
  features_ = activation.features;
  report_broken_ = std::move(activation.report_broken);
  signal_config_change_ = std::move(activation.signal_config_change);
  bus_master_ = activation.bus_master;
  broken_ = false;
  if (!resume_.has_value()) {
    absl::StatusOr<EventFd> created = EventFd::Create("virtio-net resume");
    if (!created.ok()) return created.status();
    resume_ = std::move(*created);
  }
  resume_->Drain();  // a resume left over from before a reset
  const bool event_idx = Has(activation.features, kRingEventIdxFeature);
  const bool indirect = Has(activation.features, kRingIndirectDescFeature);
  for (const ActiveQueue& q : activation.queues) {
    std::optional<Queue>* queue = q.index == kReceiveQueue    ? &rx_
                                  : q.index == kTransmitQueue ? &tx_
                                  : q.index == kControlQueue  ? &ctrl_
                                                              : nullptr;
    if (queue != nullptr) queue->emplace(Queue{q, SplitVirtqueue(q.layout, event_idx, indirect, q.start_index)});
  }

  std::vector<DeviceWorker::Handler> handlers;
  if (rx_) {
    const int kick_fd = rx_->active.kick_fd;
    handlers.push_back({kick_fd, [this, kick_fd] {
                          DrainEventFd(kick_fd);
                          ProcessReceive();
                        }});
    // Edge-triggered: receiving stops, leaving frames in the backend, while the guest has no
    // buffers; a level-triggered fd would wake the worker for them again and again. The rx
    // kick that brings buffers resumes it.
    handlers.push_back({backend_->fd(), [this] { ProcessReceive(); }, /*edge_triggered=*/true});
  }
  if (tx_) {
    const int kick_fd = tx_->active.kick_fd;
    handlers.push_back({kick_fd, [this, kick_fd] {
                          DrainEventFd(kick_fd);
                          ProcessTransmit();
                        }});
  }
  if (ctrl_) {
    const int kick_fd = ctrl_->active.kick_fd;
    handlers.push_back({kick_fd, [this, kick_fd] {
                          DrainEventFd(kick_fd);
                          ProcessControl();
                        }});
  }
  if (handlers.empty()) return absl::OkStatus();  // the driver enabled no queue
  const int resume_fd = resume_->fd();
  handlers.push_back({resume_fd, [this, resume_fd] {
                        DrainEventFd(resume_fd);
                        ProcessReceive();
                        ProcessTransmit();
                      }});
  absl::StatusOr<std::unique_ptr<DeviceWorker>> worker =
      DeviceWorker::Start("virtio-net", std::move(handlers));
  if (!worker.ok()) return worker.status();
  worker_.Install(std::move(*worker));
  return absl::OkStatus();
}

void VirtioNet::Reset() {
  worker_.Stop();  // first, without mutex_: the worker holds it while it moves a round
  absl::MutexLock lock(&mutex_);
  if (memory_ != nullptr) {  // activated, so offloads may be on
    // Frames queued in the backend until the next activation must suit whatever the next
    // driver negotiates: no offloads.
    if (absl::Status set = backend_->SetOffloads(0); !set.ok()) {
      Log(LogLevel::kWarning, "virtio-net (%s): reset: %s", std::string(backend_->name()),
          set.ToString());
    }
  }
  rx_.reset();
  tx_.reset();
  ctrl_.reset();
  signal_config_change_ = nullptr;
  status_.store(kNetStatusLinkUp, std::memory_order_release);
  rx_buffer_.reset();
  memory_ = nullptr;
  features_ = 0;
  report_broken_ = nullptr;
  bus_master_ = nullptr;
}

void VirtioNet::ProcessReceive() {
  absl::MutexLock lock(&mutex_);
  if (!rx_ || broken_ || !MayAccessMemory()) return;
  bool used = false;
  const Round round = ReceiveFrames(&used);
  Finish(*rx_, used, round);
}

void VirtioNet::ProcessTransmit() {
  absl::MutexLock lock(&mutex_);
  if (!tx_ || broken_ || !MayAccessMemory()) return;
  bool used = false;
  const Round round = TransmitFrames(&used);
  Finish(*tx_, used, round);
}

void VirtioNet::Finish(Queue& queue, bool used, Round round) {
  if (used) {
    // As in ServeQueue: a used ring the driver made unreadable still gets its interrupt.
    absl::StatusOr<bool> wanted = queue.ring.ShouldInterrupt(*memory_);
    if (!wanted.ok() || *wanted) queue.active.signal_used();
  }
  if (round == Round::kMore) {
    (void)resume_->Signal();
  }
  if (round == Round::kBroken) {
    broken_ = true;
    if (report_broken_) report_broken_();
  }
}

// Receive (§5.1.6.4): each frame goes into one chain (no MRG_RXBUF), header first, which the
// backend writes itself; the device only sets num_buffers.
Round VirtioNet::ReceiveFrames(bool* used) {
  // Every chain returned and every frame dropped counts towards the round.
  for (int frames = 0; frames < kFramesPerRound; ++frames) {
    if (!rx_buffer_) {
      absl::StatusOr<std::optional<DescriptorChain>> chain = PopOrArm(rx_->ring, *memory_);
      if (!chain.ok()) {
        MINIVMM_LOG_GUEST_ERROR("virtio-net: receive queue: %s", chain.status().ToString());
        return Round::kBroken;
      }
      // Out of buffers: frames wait in the backend until the driver adds some and kicks.
      if (!chain->has_value()) return Round::kDone;
      if ((*chain)->writable_bytes < kVirtioNetHeaderSize) {
        // §5.1.6.3.1 only says buffers SHOULD hold 1526 bytes; one that cannot even hold the
        // header is useless, and goes back empty.
        MINIVMM_LOG_GUEST_ERROR(
            "virtio-net: receive buffer of %d bytes cannot hold the %d-byte header; returned "
            "unused",
            (*chain)->writable_bytes, kVirtioNetHeaderSize);
        if (!PushUsed(*rx_, (*chain)->head, 0, used)) return Round::kBroken;
        continue;
      }
      std::vector<iovec> iov = ReceiveIovecs(*memory_, **chain, &rx_spare_byte_);
      const uint64_t capacity = TotalLength(iov) - 1;
      rx_buffer_.emplace(RxBuffer{(*chain)->head, std::move(iov), capacity});
    }
    const ssize_t n = ReadFrame(backend_->fd(), rx_buffer_->iov);
    if (n < 0) {
      // EAGAIN: nothing more now; the backend fd's next edge brings us back.
      if (errno != EAGAIN) LogBackendError("read", errno);
      return Round::kDone;
    }
    if (n == 0) {
      // A socket backend whose peer closed (a tap never returns 0: every frame has a header).
      LogBackendError("read", 0);
      return Round::kDone;
    }
    const uint64_t length = static_cast<uint64_t>(n);
    const uint64_t capacity = rx_buffer_->capacity;
    if (length > capacity || length < kVirtioNetHeaderSize) {
      // Too long for the buffer (it reached the spare byte; the backend discarded the rest of
      // it), or without a header: drop the frame and keep the buffer for the next one, rather
      // than hand the driver a bad frame.
      ++counters_.rx_dropped;
      static LogBudget budget(20);
      if (budget.Take()) {
        Log(LogLevel::kWarning, "virtio-net (%s): dropped a received frame: %s",
            std::string(backend_->name()),
            length > capacity
                ? absl::StrFormat("over the %d bytes of the guest's buffer (host MTU over 1500 "
                                  "without GUEST_TSO?)",
                                  capacity)
                : absl::StrFormat("%d bytes, shorter than the virtio-net header", length));
      }
      continue;
    }
    // §5.1.6.4.1: without MRG_RXBUF, num_buffers is 1 (le16). Without GUEST_CSUM the flags
    // must be zero; the tap may set DATA_VALID regardless.
    PokeFrame(rx_buffer_->iov, kVirtioNetHeaderNumBuffersOffset, 1);
    PokeFrame(rx_buffer_->iov, kVirtioNetHeaderNumBuffersOffset + 1, 0);
    if (!Has(features_, kNetFeatureGuestCsum)) {
      PokeFrame(rx_buffer_->iov, kVirtioNetHeaderFlagsOffset, 0);
    }
    const uint16_t head = rx_buffer_->head;
    rx_buffer_.reset();
    if (!PushUsed(*rx_, head, static_cast<uint32_t>(length), used)) return Round::kBroken;
    ++counters_.rx_frames;
  }
  return Round::kMore;
}

// Transmit (§5.1.6.2): each chain is one frame, header first, all device-readable.
Round VirtioNet::TransmitFrames(bool* used) {
  for (int frames = 0; frames < kFramesPerRound; ++frames) {
    absl::StatusOr<std::optional<DescriptorChain>> chain = PopOrArm(tx_->ring, *memory_);
    if (!chain.ok()) {
      MINIVMM_LOG_GUEST_ERROR("virtio-net: transmit queue: %s", chain.status().ToString());
      return Round::kBroken;
    }
    if (!chain->has_value()) return Round::kDone;
    const DescriptorChain& frame = **chain;
    if (frame.writable_bytes != 0 || frame.readable_bytes < kVirtioNetHeaderSize) {
      MINIVMM_LOG_GUEST_ERROR(
          "virtio-net: transmit chain %d has %d readable and %d writable bytes; a frame is a "
          "%d-byte header and a packet, all device-readable",
          frame.head, frame.readable_bytes, frame.writable_bytes, kVirtioNetHeaderSize);
      return Round::kBroken;
    }
    Transmit(frame);
    if (!PushUsed(*tx_, frame.head, 0, used)) return Round::kBroken;
  }
  return Round::kMore;
}

void VirtioNet::Transmit(const DescriptorChain& frame) {
  ChainReader reader(*memory_, frame);
  const std::vector<std::span<const uint8_t>> spans = reader.TakeSpans(frame.readable_bytes);
  if (spans.size() > IOV_MAX) {
    // Linux never sends more than MAX_SKB_FRAGS + 2 pieces; a frame in more than one writev
    // takes would have to be copied. Dropping it is what a NIC may do with any frame.
    ++counters_.tx_errors;
    MINIVMM_LOG_GUEST_ERROR("virtio-net: transmit chain %d has %d pieces, over %d; dropped",
                            frame.head, spans.size(), IOV_MAX);
    return;
  }
  std::vector<iovec> iov;
  iov.reserve(spans.size());
  for (std::span<const uint8_t> span : spans) {
    iov.push_back({const_cast<uint8_t*>(span.data()), span.size()});
  }
  ssize_t n;
  do {
    n = ::writev(backend_->fd(), iov.data(), static_cast<int>(iov.size()));
  } while (n < 0 && errno == EINTR);
  if (n >= 0) {
    ++counters_.tx_frames;
    return;
  }
  const int err = errno;
  if (err == EAGAIN || err == ENOBUFS) {
    // The host side is not keeping up; a NIC drops then too, and TCP will resend.
    ++counters_.tx_dropped;
    static LogBudget budget(20);
    if (budget.Take()) {
      Log(LogLevel::kWarning, "virtio-net (%s): backend full (%s), transmitted frame dropped",
          std::string(backend_->name()), strerror(err));
    }
    return;
  }
  ++counters_.tx_errors;
  LogBackendError("write", err);
}

bool VirtioNet::PushUsed(Queue& queue, uint16_t head, uint32_t length, bool* used) {
  if (absl::Status pushed = queue.ring.PushUsed(*memory_, head, length); !pushed.ok()) {
    MINIVMM_LOG_GUEST_ERROR("virtio-net: queue %d: %s", queue.active.index, pushed.ToString());
    return false;
  }
  *used = true;
  return true;
}

void VirtioNet::LogBackendError(const char* operation, int err) {
  static LogBudget budget(20);
  if (!budget.Take()) return;
  Log(LogLevel::kWarning, "virtio-net (%s): %s: %s", std::string(backend_->name()), operation,
      err == 0 ? "end of file" : strerror(err));
}

}  // namespace minivmm::virtio
