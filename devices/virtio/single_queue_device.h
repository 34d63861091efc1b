// A virtio device with one request queue whose chains are handled one at a time on a worker
// thread (virtio-rng, virtio-blk): activation, the worker, reset and the serve loop live here,
// and a device supplies what it does with one chain.
#ifndef MINIVMM_DEVICES_VIRTIO_SINGLE_QUEUE_DEVICE_H_
#define MINIVMM_DEVICES_VIRTIO_SINGLE_QUEUE_DEVICE_H_

#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "devices/virtio/descriptor_chain.h"
#include "devices/virtio/device_worker.h"
#include "devices/virtio/virtio_device.h"

namespace minivmm::virtio {

class SingleQueueDevice : public VirtioDevice {
 public:
  absl::Status Activate(Activation activation) final;
  void Reset() final;

  // Serves one bounded round of requests (see ServeQueue); the worker calls it on each kick,
  // and it kicks again itself when requests remain. Public for tests.
  void ProcessRequests();

 protected:
  // The transport resets the device (joining the worker) before destroying it, so no chain is
  // handled while a derived class is torn down.
  ~SingleQueueDevice() override = default;

  // Called under the device's lock when the driver sets DRIVER_OK, before any chain.
  virtual void OnActivate(uint64_t /*negotiated_features*/) {}
  // Handles one chain: returns the bytes written into it, or nullopt when the request cannot
  // be completed and the device needs a reset. Runs on the worker, under the device's lock.
  virtual std::optional<uint32_t> HandleChain(GuestMemory& memory,
                                              const DescriptorChain& chain) = 0;

 private:
  absl::Mutex mutex_;  // activation state, against Reset from a vCPU thread
  Activation activation_ ABSL_GUARDED_BY(mutex_);
  std::optional<SplitVirtqueue> queue_ ABSL_GUARDED_BY(mutex_);
  bool broken_ ABSL_GUARDED_BY(mutex_) = false;  // protocol broken: stop until reset
  WorkerSlot worker_;  // not under mutex_: Reset stops the worker before it takes mutex_
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_SINGLE_QUEUE_DEVICE_H_
