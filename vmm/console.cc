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
      console->output_fd_ = console->file_.get();
      return console;
    }
    case SerialMode::kStdio:
      break;
  }
  console->output_fd_ = STDOUT_FILENO;
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
  if (output_fd_ < 0) return;
  while (!bytes.empty()) {
    const ssize_t n = ::write(output_fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a closed stdout must not stop the guest
    bytes = bytes.subspan(n);
  }
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
