// Port-I/O and MMIO buses: address ranges mapped to devices behind one small interface.
#ifndef MINIVMM_VMM_CORE_BUS_H_
#define MINIVMM_VMM_CORE_BUS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace minivmm {

// A device on a bus. Read/Write get the offset from the start of the device's registered
// range. They are called concurrently from vCPU threads: implementations lock their own state.
// A guest access a device does not implement is ignored (reads return what the device put in
// data, which the bus pre-fills with 0xff as an open bus would).
class BusDevice {
 public:
  virtual ~BusDevice() = default;
  virtual std::string_view Name() const = 0;
  virtual void Read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void Write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class Bus;

// Unregisters its range on destruction. Removal is safe while a vCPU is inside the device's
// handler: dispatch holds its own reference to the device for the duration of the call.
class BusRegistration {
 public:
  BusRegistration() = default;
  BusRegistration(Bus* bus, uint64_t base) : bus_(bus), base_(base) {}
  BusRegistration(BusRegistration&& other) noexcept;
  BusRegistration& operator=(BusRegistration&& other) noexcept;
  BusRegistration(const BusRegistration&) = delete;
  BusRegistration& operator=(const BusRegistration&) = delete;
  ~BusRegistration();

 private:
  Bus* bus_ = nullptr;
  uint64_t base_ = 0;
};

class Bus {
 public:
  explicit Bus(std::string name) : name_(std::move(name)) {}

  // Maps [base, base + length) to device. Fails on an empty range, address overflow, or
  // overlap with an existing range (naming both devices).
  [[nodiscard]] absl::StatusOr<BusRegistration> Register(uint64_t base, uint64_t length,
                                                         std::shared_ptr<BusDevice> device);

  // Dispatch a guest access. Returns false when no device covers [address, address + size):
  // reads then see all-ones, writes are dropped. An access that straddles the end of a device's
  // range is treated as unmapped, so a device never sees an offset past its length.
  bool Read(uint64_t address, std::span<uint8_t> data);
  bool Write(uint64_t address, std::span<const uint8_t> data);

  std::string_view name() const { return name_; }

 private:
  friend class BusRegistration;
  struct Range {
    uint64_t length;
    std::shared_ptr<BusDevice> device;
  };
  // Finds the device covering the access and the offset into it.
  std::shared_ptr<BusDevice> Find(uint64_t address, uint64_t size, uint64_t* offset);
  void Unregister(uint64_t base);

  const std::string name_;
  absl::Mutex mutex_;
  std::map<uint64_t, Range> ranges_ ABSL_GUARDED_BY(mutex_);  // keyed by base
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_CORE_BUS_H_
