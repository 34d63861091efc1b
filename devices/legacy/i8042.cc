#include "devices/legacy/i8042.h"

#include <string_view>
#include <utility>

#include "absl/strings/str_format.h"
#include "devices/legacy/i8042_registers.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm {
namespace {

absl::Status CheckByte(std::string_view field, uint32_t value) {
  if (value <= 0xff) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("i8042 state: %s = %#x does not fit in 8 bits", field, value));
}

absl::Status CheckState(const state::I8042State& s) {
  MINIVMM_RETURN_IF_ERROR(CheckByte("command_byte", s.command_byte()));
  MINIVMM_RETURN_IF_ERROR(CheckByte("output_port", s.output_port()));
  if (s.has_output_buffer()) MINIVMM_RETURN_IF_ERROR(CheckByte("output_buffer", s.output_buffer()));
  // Only the two write commands wait for a parameter byte (see WriteCommand).
  if (s.has_awaiting_parameter_for() && s.awaiting_parameter_for() != i8042::kCmdWriteCommandByte &&
      s.awaiting_parameter_for() != i8042::kCmdWriteOutputPort) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "i8042 state: awaiting_parameter_for = %#x is not a command that takes a parameter "
        "(%#x or %#x)",
        s.awaiting_parameter_for(), i8042::kCmdWriteCommandByte, i8042::kCmdWriteOutputPort));
  }
  return absl::OkStatus();
}

}  // namespace

I8042::I8042(std::function<void()> request_reset)
    : request_reset_(std::move(request_reset)),
      command_byte_(i8042::kCommandByteDefault),
      output_port_(i8042::kOutputPortNotReset | i8042::kOutputPortA20) {}

void I8042::Read(uint64_t offset, std::span<uint8_t> data) {
  if (offset != i8042::kData && offset != i8042::kStatusCommand) return;  // ports 0x61-0x63
  if (data.size() != 1) {
    MINIVMM_LOG_GUEST_ERROR("i8042: %d-byte read at offset %d ignored", data.size(), offset);
    return;
  }
  absl::MutexLock lock(&mutex_);
  data[0] = offset == i8042::kData ? ReadData() : ReadStatus();
}

void I8042::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset != i8042::kData && offset != i8042::kStatusCommand) return;
  if (data.size() != 1) {
    MINIVMM_LOG_GUEST_ERROR("i8042: %d-byte write at offset %d ignored", data.size(), offset);
    return;
  }
  bool reset;
  {
    absl::MutexLock lock(&mutex_);
    reset = offset == i8042::kData ? WriteData(data[0]) : WriteCommand(data[0]);
  }
  if (reset && request_reset_) request_reset_();
}

state::I8042State I8042::SaveState() const {
  absl::MutexLock lock(&mutex_);
  state::I8042State s;
  s.set_command_byte(command_byte_);
  s.set_output_port(output_port_);
  if (output_buffer_) s.set_output_buffer(*output_buffer_);
  if (awaiting_parameter_for_) s.set_awaiting_parameter_for(*awaiting_parameter_for_);
  s.set_last_write_was_command(last_write_was_command_);
  return s;
}

absl::Status I8042::RestoreState(const state::I8042State& s) {
  MINIVMM_RETURN_IF_ERROR(CheckState(s));
  absl::MutexLock lock(&mutex_);
  command_byte_ = static_cast<uint8_t>(s.command_byte());
  output_port_ = static_cast<uint8_t>(s.output_port());
  output_buffer_.reset();
  if (s.has_output_buffer()) output_buffer_ = static_cast<uint8_t>(s.output_buffer());
  awaiting_parameter_for_.reset();
  if (s.has_awaiting_parameter_for()) {
    awaiting_parameter_for_ = static_cast<uint8_t>(s.awaiting_parameter_for());
  }
  last_write_was_command_ = s.last_write_was_command();
  return absl::OkStatus();
}

uint8_t I8042::ReadStatus() const {
  uint8_t status = i8042::kStatusNotInhibited;
  if (output_buffer_) status |= i8042::kStatusOutputFull;
  if (command_byte_ & i8042::kCommandByteSystemFlag) status |= i8042::kStatusSystemFlag;
  if (last_write_was_command_) status |= i8042::kStatusLastWasCommand;
  return status;
}

uint8_t I8042::ReadData() {
  // Nothing is ever attached, so an empty output buffer reads as 0.
  uint8_t value = output_buffer_.value_or(0);
  output_buffer_.reset();
  return value;
}

bool I8042::WriteCommand(uint8_t command) {
  last_write_was_command_ = true;
  awaiting_parameter_for_.reset();
  switch (command) {
    case i8042::kCmdReadCommandByte:
      output_buffer_ = command_byte_;
      return false;
    case i8042::kCmdSelfTest:
      output_buffer_ = i8042::kSelfTestPassed;
      return false;
    case i8042::kCmdReadOutputPort:
      output_buffer_ = output_port_;
      return false;
    case i8042::kCmdWriteCommandByte:
    case i8042::kCmdWriteOutputPort:
      awaiting_parameter_for_ = command;
      return false;
    default:
      break;
  }
  if ((command & i8042::kCmdPulseOutputPort) == i8042::kCmdPulseOutputPort) {
    return (command & i8042::kOutputPortNotReset) == 0;
  }
  // Port enable/disable, interface tests and the like: harmless to ignore with nothing attached.
  Log(LogLevel::kDebug, "i8042: command %#x ignored", command);
  return false;
}

bool I8042::WriteData(uint8_t value) {
  last_write_was_command_ = false;
  std::optional<uint8_t> command = std::exchange(awaiting_parameter_for_, std::nullopt);
  if (command == i8042::kCmdWriteCommandByte) {
    command_byte_ = value;
    return false;
  }
  if (command == i8042::kCmdWriteOutputPort) {
    // The reset line is active low; it comes back up once the machine has reset.
    output_port_ = value | i8042::kOutputPortNotReset;
    return (value & i8042::kOutputPortNotReset) == 0;
  }
  Log(LogLevel::kDebug, "i8042: byte %#x for the keyboard dropped (none attached)", value);
  return false;
}

}  // namespace minivmm
