// MSI fakes for tests: a vector that records the messages it is pointed at and counts triggers,
// and an allocator that hands such vectors out and keeps pointers to them for inspection.
#ifndef MINIVMM_TESTS_UNIT_TESTING_FAKE_MSI_H_
#define MINIVMM_TESTS_UNIT_TESTING_FAKE_MSI_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "vmm/core/msi_interrupt.h"

namespace minivmm {

class FakeMsiInterrupt : public MsiInterrupt {
 public:
  absl::Status SetMessage(const MsiMessage& message) override {
    absl::MutexLock lock(&mutex_);
    if (!set_message_error_.ok()) return set_message_error_;
    messages_.push_back(message);
    return absl::OkStatus();
  }

  void SetMasked(bool masked) override {
    absl::MutexLock lock(&mutex_);
    masks_.push_back(masked);
  }
  std::vector<bool> masks() const {
    absl::MutexLock lock(&mutex_);
    return masks_;
  }
  void Trigger() override {
    absl::MutexLock lock(&mutex_);
    ++triggers_;
  }

  // Every message successfully set, oldest first.
  std::vector<MsiMessage> messages() const {
    absl::MutexLock lock(&mutex_);
    return messages_;
  }
  std::optional<MsiMessage> last_message() const {
    absl::MutexLock lock(&mutex_);
    if (messages_.empty()) return std::nullopt;
    return messages_.back();
  }
  int triggers() const {
    absl::MutexLock lock(&mutex_);
    return triggers_;
  }
  // What HoldsInterrupt reports: a passed-through device's vector holding an interrupt.
  void set_holds_interrupt(bool holds) {
    absl::MutexLock lock(&mutex_);
    holds_interrupt_ = holds;
  }
  bool HoldsInterrupt() const override {
    absl::MutexLock lock(&mutex_);
    return holds_interrupt_;
  }
  // Makes SetMessage fail with `error` (OkStatus restores success).
  void set_set_message_error(absl::Status error) {
    absl::MutexLock lock(&mutex_);
    set_message_error_ = std::move(error);
  }

 private:
  mutable absl::Mutex mutex_;
  std::vector<MsiMessage> messages_ ABSL_GUARDED_BY(mutex_);
  int triggers_ ABSL_GUARDED_BY(mutex_) = 0;
  bool holds_interrupt_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Status set_message_error_ ABSL_GUARDED_BY(mutex_);
  std::vector<bool> masks_ ABSL_GUARDED_BY(mutex_);
};

class FakeMsiAllocator : public MsiAllocator {
 public:
  // Allocation fails once `limit` vectors have been handed out (none by default).
  explicit FakeMsiAllocator(std::optional<size_t> limit = std::nullopt) : limit_(limit) {}

  absl::StatusOr<std::unique_ptr<MsiInterrupt>> AllocateMsi() override {
    if (limit_ && allocated_.size() >= *limit_) {
      return absl::ResourceExhaustedError("fake MSI allocator: out of GSIs");
    }
    auto vector = std::make_unique<FakeMsiInterrupt>();
    allocated_.push_back(vector.get());
    return vector;
  }

  // The vectors handed out, in order. They are owned by whoever received them.
  const std::vector<FakeMsiInterrupt*>& allocated() const { return allocated_; }

 private:
  std::optional<size_t> limit_;
  std::vector<FakeMsiInterrupt*> allocated_;
};

}  // namespace minivmm

#endif  // MINIVMM_TESTS_UNIT_TESTING_FAKE_MSI_H_
