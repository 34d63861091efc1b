// Writes to an fd whose reader minivmm does not control (stdout: a pipe, a terminal, a socket)
// from a thread of its own, so a reader that stops reading holds up neither the threads that
// produce the output (vCPUs and device workers, often under a device lock) nor the VMM's stop.
//
// Producers get back-pressure while the reader is merely slow: Write waits for room, up to
// stall_timeout. When a wait runs out the reader is taken to be stuck, and output is dropped
// (and counted) without waiting until the reader takes something again.
#ifndef MINIVMM_VMM_BASE_OUTPUT_PUMP_H_
#define MINIVMM_VMM_BASE_OUTPUT_PUMP_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace minivmm {

class OutputPump {
 public:
  struct Options {
    size_t capacity = 64 * 1024;  // bytes buffered for the reader
    absl::Duration stall_timeout = absl::Seconds(1);
    // How long destruction waits for buffered output to reach the reader before giving up.
    absl::Duration flush_timeout = absl::Seconds(2);
  };

  // Starts the writer thread for `fd`, which the caller keeps open until the pump is gone.
  static absl::StatusOr<std::unique_ptr<OutputPump>> Start(int fd, Options options);
  OutputPump(const OutputPump&) = delete;
  OutputPump& operator=(const OutputPump&) = delete;
  // Flushes for up to flush_timeout, then interrupts a write still blocked and joins.
  ~OutputPump();

  // Queues `bytes` for the reader (see the header comment for when it waits or drops).
  void Write(std::span<const uint8_t> bytes) ABSL_LOCKS_EXCLUDED(mutex_);

  // Bytes dropped because the reader was stuck or gone.
  uint64_t dropped_bytes() const ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  OutputPump(int fd, Options options) : fd_(fd), options_(options) {}
  void Run();
  bool HasRoomOrNoReader() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return pending_.size() < options_.capacity || reader_gone_;
  }
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return !pending_.empty() || stopping_;
  }
  bool Exited() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return exited_; }

  const int fd_;
  const Options options_;
  mutable absl::Mutex mutex_;
  std::deque<uint8_t> pending_ ABSL_GUARDED_BY(mutex_);
  bool stalled_ ABSL_GUARDED_BY(mutex_) = false;      // a wait for room ran out
  bool reader_gone_ ABSL_GUARDED_BY(mutex_) = false;  // write failed (EPIPE, EBADF, ...)
  uint64_t dropped_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;  // flush what is left, then exit
  bool abandon_ ABSL_GUARDED_BY(mutex_) = false;   // the flush ran out of time: exit now
  bool exited_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_BASE_OUTPUT_PUMP_H_
