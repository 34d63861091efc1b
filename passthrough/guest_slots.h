// Where passed-through functions appear on the guest's bus 0. Functions of one host device
// share a guest slot and keep their function numbers, so a multifunction device looks to the
// guest as it does on the host; if the host function 0 is not passed through, the functions
// are renumbered from 0, because a guest scans a slot only when function 0 exists
// (PCI Local Bus 3.0 §3.2.2.3.4).
#ifndef MINIVMM_PASSTHROUGH_GUEST_SLOTS_H_
#define MINIVMM_PASSTHROUGH_GUEST_SLOTS_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace minivmm {

struct GuestPciFunction {
  uint8_t slot = 0;
  uint8_t function = 0;
  bool operator==(const GuestPciFunction&) const = default;
};

// host_addresses: canonical "DDDD:BB:DD.F", distinct. slot_free says which guest slots are
// still free. Returns one placement per address, in order; slots are taken lowest first.
absl::StatusOr<std::vector<GuestPciFunction>> PlanGuestFunctions(
    std::span<const std::string> host_addresses, const std::function<bool(uint8_t)>& slot_free);

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_GUEST_SLOTS_H_
