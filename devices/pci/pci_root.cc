#include "devices/pci/pci_root.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "vmm/base/log.h"

namespace minivmm {
namespace {

size_t Index(uint8_t device, uint8_t function) {
  return static_cast<size_t>(device) * kPciFunctionsPerSlot + function;
}

bool ValidAccess(uint32_t offset, size_t size) {
  return (size == 1 || size == 2 || size == 4) && offset % size == 0 &&
         offset + size <= kPciConfigSpaceSize;
}

}  // namespace

absl::Status PciRoot::AddFunction(uint8_t device, uint8_t function,
                                  std::shared_ptr<PciFunction> fn) {
  if (device >= kPciSlotsPerBus || function >= kPciFunctionsPerSlot) {
    return absl::InvalidArgumentError(
        absl::StrFormat("PCI address 00:%02x.%x is out of range", device, function));
  }
  absl::MutexLock lock(&mutex_);
  std::shared_ptr<PciFunction>& slot = functions_[Index(device, function)];
  if (slot != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrFormat("PCI address 00:%02x.%x is taken by %s", device, function, slot->Name()));
  }
  slot = std::move(fn);
  return absl::OkStatus();
}

absl::StatusOr<uint8_t> PciRoot::FreeSlot() const {
  absl::MutexLock lock(&mutex_);
  for (int device = 0; device < kPciSlotsPerBus; ++device) {
    if (functions_[Index(device, 0)] == nullptr) return static_cast<uint8_t>(device);
  }
  return absl::ResourceExhaustedError(
      absl::StrFormat("all %d PCI slots of bus 0 are in use", kPciSlotsPerBus));
}

bool PciRoot::SlotEmpty(uint8_t device) const {
  if (device >= kPciSlotsPerBus) return false;
  absl::MutexLock lock(&mutex_);
  for (int function = 0; function < kPciFunctionsPerSlot; ++function) {
    if (functions_[Index(device, function)] != nullptr) return false;
  }
  return true;
}

std::shared_ptr<PciFunction> PciRoot::Find(uint8_t bus, uint8_t device, uint8_t function,
                                           uint32_t offset, size_t size) const {
  if (bus != 0 || device >= kPciSlotsPerBus || function >= kPciFunctionsPerSlot) return nullptr;
  if (!ValidAccess(offset, size)) {
    MINIVMM_LOG_GUEST_ERROR("PCI config access of %d bytes at 00:%02x.%x offset %#x ignored", size,
                            device, function, offset);
    return nullptr;
  }
  absl::MutexLock lock(&mutex_);
  return functions_[Index(device, function)];
}

void PciRoot::ReadConfig(uint8_t bus, uint8_t device, uint8_t function, uint32_t offset,
                         std::span<uint8_t> data) const {
  std::fill(data.begin(), data.end(), 0xff);
  if (std::shared_ptr<PciFunction> fn = Find(bus, device, function, offset, data.size())) {
    fn->ReadConfig(offset, data);
  }
}

void PciRoot::WriteConfig(uint8_t bus, uint8_t device, uint8_t function, uint32_t offset,
                          std::span<const uint8_t> data) const {
  if (std::shared_ptr<PciFunction> fn = Find(bus, device, function, offset, data.size())) {
    fn->WriteConfig(offset, data);
  }
}

}  // namespace minivmm
