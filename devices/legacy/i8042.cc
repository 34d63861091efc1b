#include "devices/legacy/i8042.h"

#include <utility>

#include "devices/legacy/i8042_registers.h"
#include "vmm/base/log.h"

namespace minivmm {

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
