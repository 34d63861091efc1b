// libFuzzer target for the config space minivmm shows a guest for a passed-through function
// (passthrough/vfio_config_virtualizer.h): the input is both the device (its 256-byte config
// space and what VFIO reports about its regions and interrupts) and the guest (config reads and
// writes afterwards). Checks that writes meant for the device stay inside the access and the
// legacy config space, and that MSI and BAR state stay within what the device offers.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "passthrough/vfio_config_virtualizer.h"
#include "tests/fuzz/fuzz_ops.h"

namespace minivmm {
namespace {

using fuzzing::Access;
using fuzzing::FuzzInput;
using fuzzing::Trap;

constexpr int kMaxOps = 128;
constexpr size_t kConfigBytes = 256;

void Run(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  const std::span<const uint8_t> config_bytes = input.TakeBytes(kConfigBytes);
  if (config_bytes.size() < kConfigBytes) return;
  std::array<uint8_t, kConfigBytes> device{};
  std::copy(config_bytes.begin(), config_bytes.end(), device.begin());

  VfioHostFunction host;
  for (uint64_t& bar : host.bar_sizes) {
    const std::optional<uint8_t> exponent = input.Take<uint8_t>();
    if (!exponent) return;
    bar = *exponent == 0 ? 0 : uint64_t{1} << (*exponent % 48);
  }
  const std::optional<uint8_t> rom = input.Take<uint8_t>();
  const std::optional<uint8_t> irqs = input.Take<uint8_t>();
  const std::optional<uint16_t> msix = input.Take<uint16_t>();
  if (!rom || !irqs || !msix) return;
  host.rom_size = *rom == 0 ? 0 : uint64_t{1} << (*rom % 32);
  host.intx = *irqs & 1;
  host.msi_vectors = (*irqs >> 1) % 33;
  host.msix_vectors = *msix % 2049;

  absl::StatusOr<VfioConfigVirtualizer> created = VfioConfigVirtualizer::Create(device, host);
  if (!created.ok()) return;  // a device minivmm refuses, with a message
  VfioConfigVirtualizer& config = *created;
  for (int i = 0; i < kMaxOps; ++i) {
    const std::optional<Access> access = fuzzing::TakeAccess(input);
    if (!access) break;
    const size_t width = std::min<size_t>(access->size, 4);
    const uint32_t offset = (access->offset % 4096) & ~static_cast<uint32_t>(width - 1);
    std::array<uint8_t, 4> bytes{};
    if (access->op % 2 == 0) {
      // As VfioPciFunction does: the device's bytes first, then the virtual ones over them.
      if (config.ReadsDevice(offset, width) && offset + width <= kConfigBytes) {
        std::copy_n(device.begin() + offset, width, bytes.begin());
      }
      config.Read(offset, std::span(bytes.data(), width));
      continue;
    }
    for (size_t b = 0; b < width; ++b) bytes[b] = access->value >> (8 * b);
    const VfioConfigWriteEffect effect = config.Write(offset, std::span(bytes.data(), width));
    for (const VfioConfigWriteEffect::DeviceWrite& write : effect.device_writes) {
      Trap(!write.data.empty() && write.offset >= offset &&
           write.offset + write.data.size() <= offset + width &&
           write.offset + write.data.size() <= kConfigBytes);
      std::copy(write.data.begin(), write.data.end(), device.begin() + write.offset);
    }
    const VfioMsiState msi = config.msi();
    Trap(msi.vectors >= 1 && msi.vectors <= 32 && (msi.vectors & (msi.vectors - 1)) == 0);
    if (msi.enabled) Trap(msi.vectors <= std::max<uint32_t>(host.msi_vectors, 1));
    for (int bar = 0; bar < PciConfigSpace::kNumBars; ++bar) {
      if (config.BarMapping(bar)) Trap(config.power_state() == 0);
    }
    if (config.RomMapping()) Trap(host.rom_size != 0 && *config.RomMapping() < (1ull << 32));
  }
}

}  // namespace
}  // namespace minivmm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  minivmm::Run(data, size);
  return 0;
}
