// Just enough of the 8042 PS/2 keyboard controller for a guest to reset the machine: no
// keyboard or mouse is attached. Linux reboots through it (reboot=k, and as the fallback of
// the default reboot sequence) and firmware probes it, so it answers self-test and
// command-byte accesses and turns a pulse of the reset line into a reset request.
#ifndef MINIVMM_DEVICES_LEGACY_I8042_H_
#define MINIVMM_DEVICES_LEGACY_I8042_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "devices/legacy/legacy_state.pb.h"
#include "vmm/core/bus.h"

namespace minivmm {

class I8042 : public BusDevice {
 public:
  // One registration covers both ports: register at kBasePort for kPortSpan bytes (0x60-0x64,
  // as Firecracker does). Offsets 1-3 (ports 0x61-0x63) are not decoded: reads keep the bus's
  // open-bus value and writes are dropped. Port 0x61 (system control port B) is handled by
  // KVM's in-kernel PIT when one is created.
  static constexpr uint64_t kBasePort = 0x60;
  static constexpr uint64_t kPortSpan = 5;

  // request_reset runs on the vCPU thread that pulsed the reset line, without the device lock
  // held. It should only request the reset (stop vCPUs from another thread), not perform it.
  explicit I8042(std::function<void()> request_reset);

  std::string_view Name() const override { return "i8042"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Snapshot and restore of the controller's registers. RestoreState checks the whole message
  // first and, on a bad field, changes nothing and names the field. Restoring never pulses the
  // reset line.
  state::I8042State SaveState() const;
  absl::Status RestoreState(const state::I8042State& s);

 private:
  uint8_t ReadStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  uint8_t ReadData() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Both return true when the write pulsed the reset line.
  bool WriteCommand(uint8_t command) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  bool WriteData(uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const std::function<void()> request_reset_;

  mutable absl::Mutex mutex_;
  uint8_t command_byte_ ABSL_GUARDED_BY(mutex_);
  uint8_t output_port_ ABSL_GUARDED_BY(mutex_);
  std::optional<uint8_t> output_buffer_ ABSL_GUARDED_BY(mutex_);
  // A command (0x60 or 0xd1) whose parameter byte the next data-port write carries.
  std::optional<uint8_t> awaiting_parameter_for_ ABSL_GUARDED_BY(mutex_);
  bool last_write_was_command_ ABSL_GUARDED_BY(mutex_) = true;
};

}  // namespace minivmm

#endif  // MINIVMM_DEVICES_LEGACY_I8042_H_
