// One interrupt line (a GSI) that one or more devices drive. PCI INTx lines are wired-OR (PCI
// 3.0 §2.2.6): functions in slots s and s + 8 share a GSI, and the line is asserted while any
// of them asserts it. KVM_IRQ_LINE does not OR its callers (the line is one source's level), so
// each device drives a Source here, and the line follows the OR of them.
//
// Level changes and the write to the underlying line happen under one lock, so concurrent
// callers (a vCPU reading a device's ISR, a worker raising the interrupt) cannot leave the
// line at a level no source has; and only changes reach the underlying line, so devices may
// re-assert their level after every register access.
#ifndef MINIVMM_VMM_CORE_SHARED_IRQ_LINE_H_
#define MINIVMM_VMM_CORE_SHARED_IRQ_LINE_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vmm/core/irq_line.h"

namespace minivmm {

class SharedIrqLine {
 public:
  // `line` is the line itself (KVM_IRQ_LINE on one GSI), set on every change of the OR.
  explicit SharedIrqLine(std::unique_ptr<IrqLine> line) : line_(std::move(line)) {}
  SharedIrqLine(const SharedIrqLine&) = delete;
  SharedIrqLine& operator=(const SharedIrqLine&) = delete;

  // A new source for one device, deasserted. It must not outlive this line.
  std::unique_ptr<IrqLine> AddSource() ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  class Source;
  void Set(size_t source, bool asserted) ABSL_LOCKS_EXCLUDED(mutex_);

  absl::Mutex mutex_;
  const std::unique_ptr<IrqLine> line_;
  std::vector<bool> levels_ ABSL_GUARDED_BY(mutex_);  // by source
  bool line_level_ ABSL_GUARDED_BY(mutex_) = false;   // what line_ was last set to
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_CORE_SHARED_IRQ_LINE_H_
