// An IrqLine for tests: remembers the current level and counts rising edges.
#ifndef MINIVMM_TESTS_UNIT_TESTING_FAKE_IRQ_LINE_H_
#define MINIVMM_TESTS_UNIT_TESTING_FAKE_IRQ_LINE_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vmm/core/irq_line.h"

namespace minivmm {

class FakeIrqLine : public IrqLine {
 public:
  void SetLevel(bool asserted) override {
    absl::MutexLock lock(&mutex_);
    if (asserted && !level_) ++rising_edges_;
    level_ = asserted;
  }

  bool level() const {
    absl::MutexLock lock(&mutex_);
    return level_;
  }

  int rising_edges() const {
    absl::MutexLock lock(&mutex_);
    return rising_edges_;
  }

 private:
  mutable absl::Mutex mutex_;
  bool level_ ABSL_GUARDED_BY(mutex_) = false;
  int rising_edges_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace minivmm

#endif  // MINIVMM_TESTS_UNIT_TESTING_FAKE_IRQ_LINE_H_
