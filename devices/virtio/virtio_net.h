// virtio-net (virtio 1.2 §5.1): one receive queue and one transmit queue, served by a worker
// thread that moves frames between the queues and a NetBackend (a tap). No mergeable receive
// buffers, control queue or multiqueue: each received frame fills one descriptor chain.
// Checksum and TSO offloads pass straight through, since the backend speaks the same header.
#ifndef MINIVMM_DEVICES_VIRTIO_VIRTIO_NET_H_
#define MINIVMM_DEVICES_VIRTIO_VIRTIO_NET_H_

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "devices/virtio/device_worker.h"
#include "devices/virtio/net_backend.h"
#include "devices/virtio/queue_server.h"
#include "devices/virtio/virtio_device.h"
#include "vmm/base/event_fd.h"

namespace minivmm::virtio {

// Device feature bits (virtio 1.2 §5.1.3). <linux/virtio_net.h> has them but does not compile
// as C++, so the ones used are restated.
inline constexpr int kNetFeatureCsum = 0;        // VIRTIO_NET_F_CSUM: accepts partial csums
inline constexpr int kNetFeatureGuestCsum = 1;   // VIRTIO_NET_F_GUEST_CSUM
inline constexpr int kNetFeatureMac = 5;         // VIRTIO_NET_F_MAC
inline constexpr int kNetFeatureGuestTso4 = 7;   // VIRTIO_NET_F_GUEST_TSO4
inline constexpr int kNetFeatureGuestTso6 = 8;   // VIRTIO_NET_F_GUEST_TSO6
inline constexpr int kNetFeatureGuestEcn = 9;    // VIRTIO_NET_F_GUEST_ECN
inline constexpr int kNetFeatureHostTso4 = 11;   // VIRTIO_NET_F_HOST_TSO4
inline constexpr int kNetFeatureHostTso6 = 12;   // VIRTIO_NET_F_HOST_TSO6
inline constexpr int kNetFeatureHostEcn = 13;    // VIRTIO_NET_F_HOST_ECN
inline constexpr int kNetFeatureMrgRxbuf = 15;   // VIRTIO_NET_F_MRG_RXBUF (not offered)
inline constexpr int kNetFeatureStatus = 16;     // VIRTIO_NET_F_STATUS
inline constexpr int kNetFeatureCtrlVq = 17;     // VIRTIO_NET_F_CTRL_VQ (for the announce ack)
inline constexpr int kNetFeatureGuestAnnounce = 21;  // VIRTIO_NET_F_GUEST_ANNOUNCE
inline constexpr int kNetFeatureMq = 22;         // VIRTIO_NET_F_MQ (not offered)
inline constexpr uint16_t kNetStatusLinkUp = 1;  // VIRTIO_NET_S_LINK_UP (§5.1.4)
inline constexpr uint16_t kNetStatusAnnounce = 2;  // VIRTIO_NET_S_ANNOUNCE (§5.1.4)

// What the backend may hand the guest, given the negotiated features: TUN_F_CSUM for
// GUEST_CSUM, TUN_F_TSO4/6 for GUEST_TSO4/6, TUN_F_TSO_ECN for GUEST_ECN. A TSO bit counts only
// with GUEST_CSUM and ECN only with a TSO bit, as §5.1.3.1 requires of the driver and as
// TUNSETOFFLOAD insists (it rejects TSO without CSUM).
unsigned TunOffloadsFor(uint64_t features);

// Frames that did not make it, for tests and debugging.
struct NetCounters {
  uint64_t rx_frames = 0;  // delivered to the guest
  uint64_t tx_frames = 0;  // handed to the backend
  // Received frames dropped: larger than the guest's buffer, or shorter than the header.
  uint64_t rx_dropped = 0;
  // Transmitted frames dropped because the backend was full (EAGAIN, ENOBUFS).
  uint64_t tx_dropped = 0;
  // Transmitted frames the backend refused (a bad header, too long, interface gone) or that
  // have more pieces than one writev takes.
  uint64_t tx_errors = 0;
};

class VirtioNet : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr uint16_t kReceiveQueue = 0;   // receiveq1 (§5.1.2)
  static constexpr uint16_t kTransmitQueue = 1;  // transmitq1
  static constexpr uint16_t kControlQueue = 2;   // controlq (with VIRTIO_NET_F_CTRL_VQ)
  static constexpr uint16_t kControlQueueSize = 64;
  // Exposed configuration: mac, status and max_virtqueue_pairs of struct virtio_net_config
  // (§5.1.4); the fields after them belong to features not offered.
  static constexpr size_t kConfigSize = 10;

  // The backend is shared with its opener (host backends outlive a VM rebuild), but only one
  // device may use it at a time. `mac` is what the config space offers (VIRTIO_NET_F_MAC).
  VirtioNet(std::shared_ptr<NetBackend> backend, std::array<uint8_t, 6> mac);
  ~VirtioNet() override { Reset(); }

  std::string_view Name() const override { return "virtio-net"; }
  uint16_t device_type() const override;
  uint32_t pci_class_code() const override;
  uint64_t features() const override;
  std::vector<uint16_t> queue_max_sizes() const override {
    return {kQueueSize, kQueueSize, kControlQueueSize};
  }
  size_t config_size() const override { return kConfigSize; }
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) override;
  absl::Status Activate(Activation activation) override;
  void Reset() override;
  // With GUEST_ANNOUNCE negotiated: sets VIRTIO_NET_S_ANNOUNCE and raises a configuration
  // change; the driver sends gratuitous ARPs and neighbour advertisements (so switches learn
  // where the guest went) and acknowledges on the control queue, which clears the bit.
  void AnnounceMove() override;

  NetCounters counters() const;

 private:
  struct Queue {
    ActiveQueue active;
    SplitVirtqueue ring;
  };
  // A receive chain taken off the ring, as host iovecs over its device-writable buffers and a
  // last one over rx_spare_byte_.
  struct RxBuffer {
    uint16_t head;
    std::vector<iovec> iov;
    uint64_t capacity;  // the chain's bytes in iov, without the spare
  };

  // Each round moves at most kQueueSize frames, then lets the worker serve the other direction
  // and comes back through resume_: a flood one way must not starve the other.
  void ProcessReceive();
  void ProcessTransmit();
  void ProcessControl();
  Round ReceiveFrames(bool* used) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  Round TransmitFrames(bool* used) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Writes one well-formed transmit chain to the backend; a frame the backend does not take
  // is dropped and counted.
  void Transmit(const DescriptorChain& frame) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // False when the used ring is broken.
  bool PushUsed(Queue& queue, uint16_t head, uint32_t length, bool* used)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Rate-limited warning about a failed read or write on the backend (err 0: end of file).
  void LogBackendError(const char* operation, int err);
  // Interrupts the driver if it wants it, schedules the next round, or marks the device broken.
  void Finish(Queue& queue, bool used, Round round) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const std::shared_ptr<NetBackend> backend_;
  const std::array<uint8_t, kConfigSize> config_;

  mutable absl::Mutex mutex_;  // activation state, against Reset from a vCPU thread
  GuestMemory* memory_ ABSL_GUARDED_BY(mutex_) = nullptr;
  uint64_t features_ ABSL_GUARDED_BY(mutex_) = 0;
  std::function<void()> report_broken_ ABSL_GUARDED_BY(mutex_);
  const std::atomic<bool>* bus_master_ ABSL_GUARDED_BY(mutex_) = nullptr;  // see Activation
  bool MayAccessMemory() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return BusMasterEnabled(bus_master_);
  }
  std::optional<Queue> rx_ ABSL_GUARDED_BY(mutex_);
  std::optional<Queue> tx_ ABSL_GUARDED_BY(mutex_);
  std::optional<Queue> ctrl_ ABSL_GUARDED_BY(mutex_);
  std::function<void()> signal_config_change_ ABSL_GUARDED_BY(mutex_);
  // The config space's status field: LINK_UP always, ANNOUNCE while an announcement waits for
  // the driver's ack. Read by vCPUs (ReadConfig) without mutex_.
  std::atomic<uint16_t> status_{kNetStatusLinkUp};
  // A receive chain taken off the ring but not yet filled: the backend had no frame, or the
  // last frame did not fit and was dropped. The next frame goes here. (The ring cannot give a
  // chain back, and the device may hold buffers as long as it likes.)
  std::optional<RxBuffer> rx_buffer_ ABSL_GUARDED_BY(mutex_);
  // Where a frame too long for rx_buffer_ overflows to, which tells it did not fit.
  uint8_t rx_spare_byte_ ABSL_GUARDED_BY(mutex_) = 0;
  std::optional<EventFd> resume_ ABSL_GUARDED_BY(mutex_);  // a round stopped with work left
  WorkerSlot worker_;  // not under mutex_: Reset stops the worker before it takes mutex_
  bool broken_ ABSL_GUARDED_BY(mutex_) = false;
  NetCounters counters_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_VIRTIO_NET_H_
