// Ring feature bits (virtio 1.2 §6). <linux/virtio_ring.h> defines them too, but its inline
// helpers do not compile as C++ (void* conversions), so the two bits are restated here.
#ifndef MINIVMM_DEVICES_VIRTIO_RING_FEATURES_H_
#define MINIVMM_DEVICES_VIRTIO_RING_FEATURES_H_

namespace minivmm::virtio {

inline constexpr int kRingIndirectDescFeature = 28;  // VIRTIO_F_INDIRECT_DESC
inline constexpr int kRingEventIdxFeature = 29;      // VIRTIO_F_EVENT_IDX

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_RING_FEATURES_H_
