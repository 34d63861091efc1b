#include "vmm/base/output_pump.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "vmm/base/log.h"
#include "vmm/base/seccomp.h"
#include "vmm/base/thread_kick.h"

namespace minivmm {
namespace {

// One write at most this long, so the writer looks at abandon_ between writes.
constexpr size_t kChunk = 4096;

}  // namespace

absl::StatusOr<std::unique_ptr<OutputPump>> OutputPump::Start(int fd, Options options) {
  InstallThreadKickHandler();  // destruction may have to interrupt a blocked write
  std::unique_ptr<OutputPump> pump(new OutputPump(fd, options));
  // The thread inherits the caller's signal mask (minivmm blocks SIGTERM and friends first).
  pump->thread_ = std::thread([p = pump.get()] { p->Run(); });
  return pump;
}

OutputPump::~OutputPump() {
  mutex_.Lock();
  stopping_ = true;
  if (!mutex_.AwaitWithTimeout(absl::Condition(this, &OutputPump::Exited),
                               options_.flush_timeout)) {
    // The reader is not taking the rest: interrupt the blocked write (a kick that lands just
    // before the write begins is missed, hence the retries) and let the output go.
    abandon_ = true;
    while (!mutex_.AwaitWithTimeout(absl::Condition(this, &OutputPump::Exited),
                                    absl::Milliseconds(10))) {
      KickThread(thread_.native_handle());
    }
  }
  mutex_.Unlock();
  thread_.join();
}

void OutputPump::Write(std::span<const uint8_t> bytes) {
  absl::MutexLock lock(&mutex_);
  while (!bytes.empty()) {
    if (reader_gone_) {
      dropped_ += bytes.size();
      return;
    }
    if (pending_.size() >= options_.capacity) {
      if (stalled_ || !mutex_.AwaitWithTimeout(
                          absl::Condition(this, &OutputPump::HasRoomOrNoReader),
                          options_.stall_timeout)) {
        stalled_ = true;
        dropped_ += bytes.size();
        return;
      }
      continue;
    }
    const size_t take = std::min(bytes.size(), options_.capacity - pending_.size());
    pending_.insert(pending_.end(), bytes.begin(), bytes.begin() + take);
    bytes = bytes.subspan(take);
  }
}

uint64_t OutputPump::dropped_bytes() const {
  absl::MutexLock lock(&mutex_);
  return dropped_;
}

void OutputPump::Run() {
  std::array<uint8_t, kChunk> chunk;
  if (absl::Status entered = EnterThreadClass(ThreadClass::kOutputWriter); !entered.ok()) {
    Log(LogLevel::kError, "console output: %s", entered.ToString());
  }
  absl::MutexLock lock(&mutex_);
  for (;;) {
    mutex_.Await(absl::Condition(this, &OutputPump::HasWorkOrStopping));
    if (pending_.empty() || abandon_ || reader_gone_) break;  // only stopping_ left
    const size_t length = std::min(pending_.size(), chunk.size());
    std::copy_n(pending_.begin(), length, chunk.begin());
    mutex_.Unlock();
    const ssize_t n = ::write(fd_, chunk.data(), length);
    const int err = errno;
    mutex_.Lock();
    if (n > 0) {
      pending_.erase(pending_.begin(), pending_.begin() + n);
      stalled_ = false;  // the reader is back: producers may wait for room again
    } else if (n < 0 && err == EAGAIN) {
      // An fd someone made non-blocking: wait until it takes bytes (or the next round).
      mutex_.Unlock();
      pollfd writable = {.fd = fd_, .events = POLLOUT, .revents = 0};
      (void)::poll(&writable, 1, /*timeout_ms=*/100);
      mutex_.Lock();
    } else if (n < 0 && err != EINTR) {
      // A closed stdout must not stop the guest: its output goes nowhere from now on.
      reader_gone_ = true;
      dropped_ += pending_.size();
      pending_.clear();
    }
  }
  exited_ = true;
}

}  // namespace minivmm
