// minivmm: boots a Linux guest on KVM from a vm.toml description.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "passthrough/passthrough_command.h"
#include "vmm/api/ctl_command.h"
#include "vmm/base/exit_codes.h"
#include "vmm/base/log.h"
#include "vmm/boot/cache_command.h"
#include "vmm/config/config.h"
#include "vmm/migration_source.h"
#include "vmm/run_vm.h"

ABSL_FLAG(std::string, config, "", "Path of the VM description (TOML), e.g. configs/example.toml");
ABSL_FLAG(std::string, api_socket, "",
          "Unix socket to serve the API on (minivmm --config), or to send a command to (ctl)");
ABSL_FLAG(bool, force, false, "passthrough bind: bind even though the host uses the function");
ABSL_FLAG(std::string, log_level, "info",
          "Least severe log level shown: debug, info, warning, error");
ABSL_FLAG(std::string, restore, "",
          "Snapshot folder to continue (written by minivmm ctl snapshot), instead of --config");
ABSL_FLAG(std::string, incoming, "",
          "Wait for a live migration on unix:PATH or tcp:HOST:PORT, instead of --config");
ABSL_FLAG(bool, paused, false, "with --restore: keep the guest paused until minivmm ctl resume");
ABSL_FLAG(std::string, seccomp, "on",
          "seccomp-bpf allow-lists on every VMM thread: on, or off to debug a refused call");

namespace {

constexpr char kUsage[] =
    "minivmm boots a Linux guest on KVM.\n"
    "\n"
    "Usage: minivmm --config vm.toml [--api_socket PATH] [--log_level=info] [--seccomp=on]\n"
    "       minivmm --restore DIR [--paused] [--api_socket PATH] [...]\n"
    "       minivmm --incoming unix:PATH|tcp:HOST:PORT [--api_socket PATH] [...]\n"
    "       minivmm ctl --api_socket PATH info|pause|resume|reboot|shutdown\n"
    "       minivmm ctl --api_socket PATH snapshot DIR\n"
    "       minivmm ctl --api_socket PATH migrate unix:PATH|tcp:HOST:PORT\n"
    "       minivmm cache list|clear\n"
    "       minivmm passthrough check|list|bind BDF [--force]|release BDF\n"
    "\n"
    "  --config PATH     the VM description (TOML); keys are documented in\n"
    "                    configs/example.toml\n"
    "  --restore DIR     continue the guest of a snapshot folder (the same folder can\n"
    "                    be restored again); --paused keeps it paused until resumed\n"
    "  --incoming ADDR   wait for a live migration from another minivmm (ctl migrate)\n"
    "                    and run the guest it sends\n"
    "  --api_socket PATH serve the API (JSON over HTTP) on this unix socket, created\n"
    "                    0600 and removed when minivmm exits\n"
    "  --log_level LEVEL least severe log level shown: debug, info, warning, error\n"
    "  --seccomp on|off  system call allow-lists on every VMM thread (on); a call\n"
    "                    outside them stops minivmm with exit code 159 and names it\n"
    "  --help            this text\n"
    "  --version         the version\n"
    "  cache list        the decompressed kernels minivmm keeps ($XDG_CACHE_HOME/minivmm)\n"
    "  cache clear       removes them\n"
    "  passthrough ...   host setup for VFIO: check the IOMMU, list PCI functions\n"
    "                    with IOMMU group, driver and host use, bind one to\n"
    "                    vfio-pci, release it to its host driver\n"
    "  ctl COMMAND       drives the minivmm serving --api_socket: info prints its\n"
    "                    state (JSON); pause, resume, reboot and shutdown act on it;\n"
    "                    snapshot DIR writes a snapshot into the new folder DIR;\n"
    "                    migrate ADDR moves the running guest to minivmm --incoming ADDR\n"
    "\n"
    "Exit codes: 0 guest powered off (or shut down with ctl), 1 error, 3 guest rebooted\n"
    "with on_reboot = \"exit\", 128+N stopped by signal N, 159 a refused system call\n"
    "(seccomp). On a terminal, Ctrl-A x quits.\n";

// Abseil's own --help exits with status 1 and lists its internal flags; a user asking for help
// gets our text and status 0 instead.
bool HandleHelpOrVersion(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h" || arg == "-help") {
      std::fputs(kUsage, stdout);
      return true;
    }
    if (arg == "--version" || arg == "-version") {
      std::puts("minivmm " MINIVMM_VERSION);
      return true;
    }
  }
  return false;
}

bool ParseLogLevel(const std::string& name, minivmm::LogLevel* level) {
  static const std::pair<const char*, minivmm::LogLevel> kLevels[] = {
      {"debug", minivmm::LogLevel::kDebug},
      {"info", minivmm::LogLevel::kInfo},
      {"warning", minivmm::LogLevel::kWarning},
      {"error", minivmm::LogLevel::kError}};
  for (const auto& [n, l] : kLevels) {
    if (name == n) {
      *level = l;
      return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const absl::Time start = absl::Now();
  if (HandleHelpOrVersion(argc, argv)) return 0;
  // A reader of the console that goes away (`minivmm ... | head`) must not kill minivmm
  // before it tears the VM down: writes then fail with EPIPE, which the console ignores.
  std::signal(SIGPIPE, SIG_IGN);
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);

  if (positional.size() > 1) {
    const std::string command = positional[1];
    std::vector<std::string> args(positional.begin() + 2, positional.end());
    if (command == "cache") return minivmm::RunCacheCommand(args);
    if (command == "ctl") return minivmm::RunCtlCommand(args, absl::GetFlag(FLAGS_api_socket));
    if (command == "passthrough") {
      const minivmm::HostPci pci;
      minivmm::RealSysfsWriter writer;
      return minivmm::RunPassthroughCommand(args, absl::GetFlag(FLAGS_force),
                                            {.pci = &pci, .writer = &writer}, stdout, stderr);
    }
    std::fprintf(stderr, "minivmm: unexpected argument '%s' (see minivmm --help)\n", positional[1]);
    return minivmm::kExitError;
  }
  minivmm::LogLevel level;
  if (!ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::fprintf(stderr, "minivmm: --log_level must be debug, info, warning or error\n");
    return minivmm::kExitError;
  }
  minivmm::SetLogLevel(level);
  const std::string seccomp = absl::GetFlag(FLAGS_seccomp);
  if (seccomp != "on" && seccomp != "off") {
    std::fprintf(stderr, "minivmm: --seccomp must be on or off, got '%s'\n", seccomp.c_str());
    return minivmm::kExitError;
  }
  const std::string config_path = absl::GetFlag(FLAGS_config);
  const std::string restore_path = absl::GetFlag(FLAGS_restore);
  const std::string incoming_address = absl::GetFlag(FLAGS_incoming);
  const int sources =
      !config_path.empty() + !restore_path.empty() + !incoming_address.empty();
  if (sources != 1) {
    std::fprintf(stderr, sources == 0
                             ? "minivmm: no VM given: pass --config vm.toml, --restore DIR or "
                               "--incoming ADDRESS (see minivmm --help)\n"
                             : "minivmm: --config, --restore and --incoming exclude each other: "
                               "a snapshot and a migration bring their own description\n");
    return minivmm::kExitError;
  }
  if (absl::GetFlag(FLAGS_paused) && restore_path.empty()) {
    std::fprintf(stderr, "minivmm: --paused applies to --restore only\n");
    return minivmm::kExitError;
  }
  // Everything of a snapshot is checked here, before KVM is opened.
  absl::StatusOr<minivmm::SnapshotFiles> snapshot;
  absl::StatusOr<minivmm::IncomingMigration> incoming;
  absl::StatusOr<minivmm::VmConfig> config;
  if (!incoming_address.empty()) {
    // Waits for the source; its description arrives with it.
    absl::StatusOr<minivmm::MigrationAddress> address =
        minivmm::ParseMigrationAddress(incoming_address);
    incoming = address.ok() ? minivmm::AcceptMigration(*address, minivmm::MigrationLimits{}.io_timeout)
                            : absl::StatusOr<minivmm::IncomingMigration>(address.status());
    if (incoming.ok()) config = incoming->config;
    else config = incoming.status();
  } else if (!restore_path.empty()) {
    snapshot = minivmm::ReadSnapshot(restore_path);
    if (snapshot.ok()) config = snapshot->config;
    else config = snapshot.status();
  } else {
    config = minivmm::LoadVmConfig(config_path);
  }
  if (!config.ok()) {
    std::fprintf(stderr, "minivmm: %s\n", std::string(config.status().message()).c_str());
    return minivmm::kExitError;
  }
  absl::StatusOr<int> exit_code =
      minivmm::RunVm(*config, {.vmm_start = start,
                               .api_socket = absl::GetFlag(FLAGS_api_socket),
                               .seccomp = seccomp == "on",
                               .restore = snapshot.ok() ? &*snapshot : nullptr,
                               .start_paused = absl::GetFlag(FLAGS_paused),
                               .incoming = incoming.ok() ? &*incoming : nullptr});
  if (!exit_code.ok()) {
    // A source waiting for this destination learns why it gives up, and keeps the guest.
    if (incoming.ok()) minivmm::AbandonMigration(*incoming, std::string(exit_code.status().message()));
    std::fprintf(stderr, "minivmm: %s\n", std::string(exit_code.status().message()).c_str());
    return minivmm::kExitError;
  }
  return *exit_code;
}
