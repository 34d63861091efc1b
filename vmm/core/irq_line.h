// An interrupt line as a device sees it. Devices signal; they do not know how delivery works
// (KVM_IRQ_LINE on the in-kernel irqchip, an irqfd, or a test fake).
#ifndef MINIVMM_VMM_CORE_IRQ_LINE_H_
#define MINIVMM_VMM_CORE_IRQ_LINE_H_

namespace minivmm {

class IrqLine {
 public:
  virtual ~IrqLine() = default;
  // Drives the line to the given level. Level-sensitive devices (the 16550's INTR output) call
  // this whenever their interrupt condition may have changed; repeated equal levels are cheap.
  virtual void SetLevel(bool asserted) = 0;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_CORE_IRQ_LINE_H_
