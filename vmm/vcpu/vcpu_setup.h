// Initial register state of the vCPUs for a direct 64-bit Linux boot.
#ifndef MINIVMM_VMM_VCPU_VCPU_SETUP_H_
#define MINIVMM_VMM_VCPU_VCPU_SETUP_H_

#include "absl/status/status.h"
#include "guest-firmware/linux_loader.h"
#include "vmm/kvm/kvm.h"

namespace minivmm {

// Every vCPU: LAPIC LINT0 = ExtINT, LINT1 = NMI (as a PC BIOS leaves them), boot MSRs.
absl::Status SetupVcpuCommon(KvmVcpu& vcpu);

// The boot vCPU only: long mode, flat segments, RIP at the kernel entry, RSI at the zero page.
// Application processors stay in wait-for-SIPI; the guest starts them through the LAPIC.
absl::Status SetupBootVcpu(KvmVcpu& vcpu, const LinuxEntry& entry);

}  // namespace minivmm

#endif  // MINIVMM_VMM_VCPU_VCPU_SETUP_H_
