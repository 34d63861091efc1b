#include "vmm/migration_destination.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"
#include "vmm/snapshot/migration.pb.h"
#include "vmm/snapshot/state_file.h"
#include "vmm/vcpu/cpuid.h"
#include "vmm/vm_state.pb.h"

namespace minivmm {
namespace {

constexpr uint64_t kMaxHelloBytes = 1 << 20;
constexpr uint64_t kMaxMemoryMessageBytes = (4 << 20) + 8;
constexpr uint64_t kMaxStateBytes = 64 << 20;
constexpr size_t kMaxCpuidEntries = 256;

void SendError(MigrationChannel& channel, MigrationMessage type, std::string_view reason) {
  state::MigrationError error;
  error.set_reason(std::string(reason));
  (void)channel.Send(type, error.SerializeAsString());
}

struct Hello {
  VmConfig config;
  std::vector<kvm_cpuid_entry2> cpuid;
  uint64_t memory_bytes = 0;
};

// Checks the hello; an error is the reason given to the source.
absl::StatusOr<Hello> ReadHello(MigrationChannel& channel) {
  MINIVMM_ASSIGN_OR_RETURN(const std::string payload,
                           channel.Expect(MigrationMessage::kHello, kMaxHelloBytes));
  state::MigrationHello hello;
  if (!hello.ParseFromString(payload)) {
    return absl::InvalidArgumentError("the source's hello does not parse");
  }
  if (hello.protocol_version() != kMigrationProtocolVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the source speaks migration protocol version %d, this minivmm version %d: migrate "
        "between the same minivmm versions",
        hello.protocol_version(), kMigrationProtocolVersion));
  }
  if (hello.state_format_version() > kStateFormatVersion ||
      hello.state_format_version() < kOldestReadableStateFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the source writes state format version %d, this minivmm reads %d to %d",
        hello.state_format_version(), kOldestReadableStateFormatVersion, kStateFormatVersion));
  }
  // Paths in the description are the source's; a shared file system (or the same host) has them.
  MINIVMM_ASSIGN_OR_RETURN(
      VmConfig config,
      ParseVmConfig(hello.config_toml(), "<migration source>/config.toml"));
  if (hello.memory_bytes() != config.memory_mib << 20) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the source announces %d bytes of memory for a %d MiB VM", hello.memory_bytes(),
        config.memory_mib));
  }
  if (hello.cpuid().size() % sizeof(kvm_cpuid_entry2) != 0 || hello.cpuid().empty() ||
      hello.cpuid().size() / sizeof(kvm_cpuid_entry2) > kMaxCpuidEntries) {
    return absl::InvalidArgumentError("the source's CPUID list is malformed");
  }
  Hello checked{.config = std::move(config), .cpuid = {}, .memory_bytes = hello.memory_bytes()};
  checked.cpuid.resize(hello.cpuid().size() / sizeof(kvm_cpuid_entry2));
  std::memcpy(checked.cpuid.data(), hello.cpuid().data(), hello.cpuid().size());
  return checked;
}

absl::Status ReceiveMemoryAndState(MigrationChannel& channel, GuestMemory& memory,
                                   state::VmState* state) {
  bool have_state = false;
  for (;;) {
    MINIVMM_ASSIGN_OR_RETURN(MigrationChannel::Message message, channel.Receive(kMaxStateBytes));
    switch (message.type) {
      case MigrationMessage::kMemory: {
        if (message.payload.size() < 8 || message.payload.size() > kMaxMemoryMessageBytes) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "a memory message of %d bytes (at most %d)", message.payload.size(),
              kMaxMemoryMessageBytes));
        }
        uint64_t gpa = 0;
        std::memcpy(&gpa, message.payload.data(), sizeof(gpa));
        const auto* bytes = reinterpret_cast<const uint8_t*>(message.payload.data()) + 8;
        // Bounds-checked: pages outside guest memory are refused, not written.
        MINIVMM_RETURN_IF_ERROR(
            memory.Write(gpa, std::span(bytes, message.payload.size() - 8)));
        break;
      }
      case MigrationMessage::kState: {
        MINIVMM_ASSIGN_OR_RETURN(const std::string payload,
                                 DecodeState(message.payload, "the migration source's state"));
        if (!state->ParseFromString(payload)) {
          return absl::DataLossError("the migration source's state does not parse");
        }
        have_state = true;
        break;
      }
      case MigrationMessage::kComplete:
        if (!have_state) return absl::InvalidArgumentError("the source completed without state");
        return absl::OkStatus();
      case MigrationMessage::kAbandon: {
        state::MigrationError error;
        (void)error.ParseFromString(message.payload);
        return absl::AbortedError(
            absl::StrFormat("the source abandoned the migration: %s", error.reason()));
      }
      default:
        return absl::InvalidArgumentError(absl::StrFormat(
            "unexpected %s message during the memory copy",
            MigrationMessageName(message.type)));
    }
  }
}

}  // namespace

absl::StatusOr<IncomingMigration> AcceptMigration(const MigrationAddress& address,
                                                  absl::Duration io_timeout) {
  MINIVMM_ASSIGN_OR_RETURN(MigrationListener listener, MigrationListener::Listen(address));
  Log(LogLevel::kInfo, "waiting for a migration on %s (minivmm ctl --api_socket S migrate %s)",
      address.text, address.text);
  MINIVMM_ASSIGN_OR_RETURN(MigrationChannel channel,
                           listener.Accept(absl::InfiniteDuration(), io_timeout));
  absl::StatusOr<Hello> hello = ReadHello(channel);
  if (!hello.ok()) {
    SendError(channel, MigrationMessage::kRefuse, std::string(hello.status().message()));
    return absl::Status(hello.status().code(),
                        absl::StrFormat("refused the incoming migration: %s",
                                        hello.status().message()));
  }
  return IncomingMigration{.channel = std::move(channel),
                           .config = std::move(hello->config),
                           .cpuid = std::move(hello->cpuid)};
}

absl::StatusOr<std::unique_ptr<Vm>> ReceiveMigration(IncomingMigration& incoming,
                                                     const KvmSystem& kvm,
                                                     const HostBackends& backends,
                                                     Console* console, StopRequest* stop,
                                                     absl::Time vmm_start) {
  auto refuse = [&](const absl::Status& status, MigrationMessage type) {
    SendError(incoming.channel, type, std::string(status.message()));
    return absl::Status(status.code(),
                        absl::StrFormat("incoming migration failed: %s", status.message()));
  };
  absl::StatusOr<CpuidList> supported = kvm.GetSupportedCpuid();
  if (!supported.ok()) return refuse(supported.status(), MigrationMessage::kRefuse);
  if (absl::Status compatible = CheckCpuidCompatible(incoming.cpuid, *supported);
      !compatible.ok()) {
    return refuse(compatible, MigrationMessage::kRefuse);
  }
  absl::StatusOr<std::unique_ptr<Vm>> vm = Vm::CreateForIncoming(
      kvm, incoming.config, backends, console, stop, vmm_start);
  if (!vm.ok()) return refuse(vm.status(), MigrationMessage::kRefuse);
  if (absl::Status accepted = incoming.channel.Send(MigrationMessage::kAccept); !accepted.ok()) {
    return accepted;
  }
  const absl::Time start = absl::Now();
  state::VmState state;
  if (absl::Status received = ReceiveMemoryAndState(incoming.channel, (*vm)->memory(), &state);
      !received.ok()) {
    return refuse(received, MigrationMessage::kAbandon);
  }
  if (absl::Status restored = (*vm)->RestoreState(kvm, incoming.config, state); !restored.ok()) {
    return refuse(restored, MigrationMessage::kAbandon);
  }
  Log(LogLevel::kInfo, "migration: memory and state received in %.2f s",
      absl::ToDoubleSeconds(absl::Now() - start));
  return vm;
}

absl::Status ConfirmMigration(IncomingMigration& incoming) {
  return incoming.channel.Send(MigrationMessage::kStarted);
}

void AbandonMigration(IncomingMigration& incoming, std::string_view reason) {
  SendError(incoming.channel, MigrationMessage::kAbandon, reason);
}

}  // namespace minivmm
