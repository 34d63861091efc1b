// The host end of the guest's serial console: stdio (raw mode on a terminal), a log file, or
// nothing. Lives across guest reboots so the terminal is set up and restored exactly once.
#ifndef MINIVMM_VMM_CONSOLE_H_
#define MINIVMM_VMM_CONSOLE_H_

#include <termios.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "vmm/base/output_pump.h"
#include "vmm/base/unique_fd.h"
#include "vmm/config/config.h"

namespace minivmm {

// Ctrl-A x quits minivmm, Ctrl-A Ctrl-A sends one Ctrl-A (the QEMU convention), so that
// Ctrl-C can go to the guest while the terminal is raw.
inline constexpr uint8_t kConsoleEscape = 0x01;

class Console {
 public:
  static absl::StatusOr<std::unique_ptr<Console>> Create(SerialMode mode,
                                                         const std::filesystem::path& path);
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;
  ~Console();  // restores the terminal

  // Guest output, from vCPU threads and device workers. Never blocks for long: a writer thread
  // takes it to the output (see OutputPump), so a reader that stops reading cannot hang a vCPU
  // or the VMM's stop; its output is dropped after a second's wait, and counted.
  void Write(std::span<const uint8_t> bytes);
  uint64_t dropped_output_bytes() const;

  // -1 when there is no input (mode none/file, or stdin at EOF).
  int input_fd() const { return input_fd_; }

  struct Input {
    std::string bytes;  // for the guest
    bool quit = false;  // the escape sequence was typed
    bool eof = false;   // input is gone; stop watching it
  };
  // Reads what is available on input_fd() and strips the escape sequence.
  Input ReadInput();

 private:
  Console() = default;
  std::string FilterEscapes(std::span<const char> raw, bool* quit);

  UniqueFd file_;  // owned output file in SerialMode::kFile
  // Declared after file_ so it is destroyed (flushed and joined) before the file is closed.
  std::unique_ptr<OutputPump> output_;
  int input_fd_ = -1;
  std::optional<termios> saved_termios_;
  bool escape_pending_ = false;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_CONSOLE_H_
