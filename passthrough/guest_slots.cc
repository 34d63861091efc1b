#include "passthrough/guest_slots.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_format.h"

namespace minivmm {
namespace {

constexpr uint8_t kSlots = 32;

std::string HostDevice(const std::string& address) { return address.substr(0, address.size() - 2); }
uint8_t HostFunction(const std::string& address) {
  return static_cast<uint8_t>(address.back() - '0');
}

}  // namespace

absl::StatusOr<std::vector<GuestPciFunction>> PlanGuestFunctions(
    std::span<const std::string> host_addresses, const std::function<bool(uint8_t)>& slot_free) {
  // Group by host device, in order of first appearance.
  std::vector<std::string> devices;
  std::map<std::string, std::vector<uint8_t>> functions;
  for (const std::string& address : host_addresses) {
    const std::string device = HostDevice(address);
    if (!functions.contains(device)) devices.push_back(device);
    functions[device].push_back(HostFunction(address));
  }
  std::map<std::string, uint8_t> slot_of;
  uint8_t next = 0;
  for (const std::string& device : devices) {
    while (next < kSlots && !slot_free(next)) ++next;
    if (next == kSlots) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "no free guest PCI slot for host device %s: bus 0 has %d slots", device, kSlots));
    }
    slot_of[device] = next++;
  }
  std::vector<GuestPciFunction> plan;
  for (const std::string& address : host_addresses) {
    const std::vector<uint8_t>& siblings = functions[HostDevice(address)];
    const bool has_function_zero = std::find(siblings.begin(), siblings.end(), 0) != siblings.end();
    uint8_t function = HostFunction(address);
    if (!has_function_zero) {
      // Renumber by host order: the lowest host function becomes function 0.
      std::vector<uint8_t> sorted = siblings;
      std::sort(sorted.begin(), sorted.end());
      function =
          static_cast<uint8_t>(std::find(sorted.begin(), sorted.end(), function) - sorted.begin());
    }
    plan.push_back({slot_of[HostDevice(address)], function});
  }
  return plan;
}

}  // namespace minivmm
