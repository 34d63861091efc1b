#include "vmm/core/shared_irq_line.h"

#include <algorithm>

namespace minivmm {

class SharedIrqLine::Source : public IrqLine {
 public:
  Source(SharedIrqLine* line, size_t index) : line_(line), index_(index) {}
  void SetLevel(bool asserted) override { line_->Set(index_, asserted); }

 private:
  SharedIrqLine* const line_;
  const size_t index_;
};

std::unique_ptr<IrqLine> SharedIrqLine::AddSource() {
  absl::MutexLock lock(&mutex_);
  levels_.push_back(false);
  return std::make_unique<Source>(this, levels_.size() - 1);
}

void SharedIrqLine::Set(size_t source, bool asserted) {
  absl::MutexLock lock(&mutex_);
  levels_[source] = asserted;
  const bool any = std::find(levels_.begin(), levels_.end(), true) != levels_.end();
  if (any == line_level_) return;
  line_level_ = any;
  line_->SetLevel(any);  // under the lock: the last change made is the last one written
}

}  // namespace minivmm
