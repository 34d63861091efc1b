// The receiving side of live migration (minivmm --incoming ADDRESS). Before any KVM object
// exists, AcceptMigration waits for the source and checks what it announces (protocol and state
// versions, the VM description, the memory size); ReceiveMigration then checks the guest's CPUID
// against this host's KVM, accepts, writes the pages into a VM built from the description and
// restores the state; ConfirmMigration tells the source the guest runs here. A failure at any
// step is sent to the source (which keeps running the guest) and ends this minivmm with 1.
#ifndef MINIVMM_VMM_MIGRATION_DESTINATION_H_
#define MINIVMM_VMM_MIGRATION_DESTINATION_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vmm/config/config.h"
#include "vmm/host_backends.h"
#include "vmm/kvm/kvm.h"
#include "vmm/snapshot/migration_channel.h"
#include "vmm/vm.h"

namespace minivmm {

struct IncomingMigration {
  MigrationChannel channel;
  VmConfig config;
  std::vector<kvm_cpuid_entry2> cpuid;  // vCPU 0's, as the guest sees it
};

// Listens on `address` until a source connects (forever), then reads its hello. A hello this
// minivmm cannot take is refused (the source is told why) and returned as the error.
absl::StatusOr<IncomingMigration> AcceptMigration(const MigrationAddress& address,
                                                  absl::Duration io_timeout);

absl::StatusOr<std::unique_ptr<Vm>> ReceiveMigration(IncomingMigration& incoming,
                                                     const KvmSystem& kvm,
                                                     const HostBackends& backends,
                                                     Console* console, StopRequest* stop,
                                                     absl::Time vmm_start);

// Once the restored VM is about to run: the source may let go of the guest.
absl::Status ConfirmMigration(IncomingMigration& incoming);

// Tells the source this side gives up (best effort).
void AbandonMigration(IncomingMigration& incoming, std::string_view reason);

}  // namespace minivmm

#endif  // MINIVMM_VMM_MIGRATION_DESTINATION_H_
