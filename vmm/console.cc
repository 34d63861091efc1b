#include "vmm/console.h"

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {

absl::StatusOr<std::unique_ptr<Console>> Console::Create(SerialMode mode,
                                                         const std::filesystem::path& path) {
  std::unique_ptr<Console> console(new Console());
  switch (mode) {
    case SerialMode::kNone:
      return console;
    case SerialMode::kFile: {
      console->file_.Reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!console->file_.valid()) {
        return ErrnoError(absl::StrFormat("cannot open serial log %s", path.string()));
      }
      MINIVMM_ASSIGN_OR_RETURN(console->output_,
                               OutputPump::Start(console->file_.get(), OutputPump::Options()));
      return console;
    }
    case SerialMode::kStdio:
      break;
  }
  MINIVMM_ASSIGN_OR_RETURN(console->output_,
                           OutputPump::Start(STDOUT_FILENO, OutputPump::Options()));
  console->input_fd_ = STDIN_FILENO;
  termios tio;
  if (::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &tio) == 0) {
    console->saved_termios_ = tio;
    // Raw input so keys (Ctrl-C included) reach the guest; keep output processing so our own
    // log lines on stderr still start at column 0.
    cfmakeraw(&tio);
    tio.c_oflag |= OPOST | ONLCR;
    ::tcsetattr(STDIN_FILENO, TCSANOW, &tio);
  }
  return console;
}

Console::~Console() {
  if (saved_termios_) ::tcsetattr(STDIN_FILENO, TCSANOW, &*saved_termios_);
}

void Console::Write(std::span<const uint8_t> bytes) {
  if (output_ != nullptr) output_->Write(bytes);
}

uint64_t Console::dropped_output_bytes() const {
  return output_ != nullptr ? output_->dropped_bytes() : 0;
}

std::string Console::FilterEscapes(std::span<const char> raw, bool* quit) {
  std::string out;
  for (char c : raw) {
    if (escape_pending_) {
      escape_pending_ = false;
      if (c == 'x' || c == 'X') {
        *quit = true;
        return out;
      }
      if (c == static_cast<char>(kConsoleEscape)) out.push_back(c);
      continue;  // unknown escapes are swallowed
    }
    if (c == static_cast<char>(kConsoleEscape) && saved_termios_) {
      escape_pending_ = true;  // only a terminal gets the escape; piped input passes through
      continue;
    }
    out.push_back(c);
  }
  return out;
}

Console::Input Console::ReadInput() {
  Input input;
  char buffer[512];
  const ssize_t n = ::read(input_fd_, buffer, sizeof(buffer));
  if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
    input.eof = true;
    input_fd_ = -1;
    return input;
  }
  if (n > 0) input.bytes = FilterEscapes(std::span(buffer, n), &input.quit);
  return input;
}

}  // namespace minivmm
