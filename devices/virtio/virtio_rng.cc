#include "devices/virtio/virtio_rng.h"

#include <linux/virtio_ids.h>
#include <sys/random.h>

#include <cerrno>

#include "devices/virtio/descriptor_chain.h"

namespace minivmm::virtio {
namespace {

// PCI class "other" (0xff): an entropy source has no class of its own (QEMU uses the same).
constexpr uint32_t kPciClassOther = 0xff0000;
// Fill at most this much per request: the driver asks for small amounts, and a bound keeps one
// request from holding the worker.
constexpr uint64_t kMaxBytesPerRequest = 64 * 1024;

void FillRandom(std::span<uint8_t> span) {
  size_t done = 0;
  while (done < span.size()) {
    // getrandom() returns short only for > 256 bytes or on a signal; loop for both.
    const ssize_t n = ::getrandom(span.data() + done, span.size() - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

uint16_t VirtioRng::device_type() const { return VIRTIO_ID_RNG; }
uint32_t VirtioRng::pci_class_code() const { return kPciClassOther; }

std::optional<uint32_t> VirtioRng::HandleChain(GuestMemory& memory, const DescriptorChain& chain) {
  ChainWriter writer(memory, chain);
  for (std::span<uint8_t> span : writer.TakeSpans(kMaxBytesPerRequest)) FillRandom(span);
  return static_cast<uint32_t>(writer.written());
}

}  // namespace minivmm::virtio
