#include "vmm/core/bus.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace minivmm {

BusRegistration::BusRegistration(BusRegistration&& other) noexcept
    : bus_(std::exchange(other.bus_, nullptr)), base_(other.base_) {}

BusRegistration& BusRegistration::operator=(BusRegistration&& other) noexcept {
  if (this != &other) {
    if (bus_ != nullptr) bus_->Unregister(base_);
    bus_ = std::exchange(other.bus_, nullptr);
    base_ = other.base_;
  }
  return *this;
}

BusRegistration::~BusRegistration() {
  if (bus_ != nullptr) bus_->Unregister(base_);
}

absl::StatusOr<BusRegistration> Bus::Register(uint64_t base, uint64_t length,
                                              std::shared_ptr<BusDevice> device) {
  if (device == nullptr) return absl::InvalidArgumentError("null device");
  if (length == 0 || base + length < base) {
    return absl::InvalidArgumentError(absl::StrFormat("%s bus: invalid range [%#x, +%#x) for %s",
                                                      name_, base, length, device->Name()));
  }
  absl::MutexLock lock(&mutex_);
  // The only candidates for overlap are the first range at or after base and the one before.
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->first < base + length) {
    return absl::AlreadyExistsError(absl::StrFormat("%s bus: %s at [%#x, +%#x) overlaps %s at %#x",
                                                    name_, device->Name(), base, length,
                                                    next->second.device->Name(), next->first));
  }
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.length > base) {
      return absl::AlreadyExistsError(
          absl::StrFormat("%s bus: %s at [%#x, +%#x) overlaps %s at %#x", name_, device->Name(),
                          base, length, prev->second.device->Name(), prev->first));
    }
  }
  ranges_.emplace(base, Range{length, std::move(device)});
  return BusRegistration(this, base);
}

void Bus::Unregister(uint64_t base) {
  absl::MutexLock lock(&mutex_);
  ranges_.erase(base);
}

std::shared_ptr<BusDevice> Bus::Find(uint64_t address, uint64_t size, uint64_t* offset) {
  absl::ReaderMutexLock lock(&mutex_);
  auto it = ranges_.upper_bound(address);
  if (it == ranges_.begin()) return nullptr;
  --it;
  const uint64_t off = address - it->first;
  if (off >= it->second.length || size > it->second.length - off) return nullptr;
  *offset = off;
  return it->second.device;
}

bool Bus::Read(uint64_t address, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0xff);
  uint64_t offset = 0;
  std::shared_ptr<BusDevice> device = Find(address, data.size(), &offset);
  if (device == nullptr) return false;
  device->Read(offset, data);
  return true;
}

bool Bus::Write(uint64_t address, std::span<const uint8_t> data) {
  uint64_t offset = 0;
  std::shared_ptr<BusDevice> device = Find(address, data.size(), &offset);
  if (device == nullptr) return false;
  device->Write(offset, data);
  return true;
}

}  // namespace minivmm
