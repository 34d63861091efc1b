// minivmm: boots a Linux guest on KVM from a vm.toml description.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "vmm/config.h"
#include "vmm/exit_codes.h"
#include "vmm/log.h"
#include "vmm/run_vm.h"

ABSL_FLAG(std::string, config, "", "Path of the VM description (TOML), e.g. configs/example.toml");
ABSL_FLAG(std::string, log_level, "info", "Least severe log level shown: debug, info, warning, error");

namespace {

constexpr char kUsage[] =
    "boots a Linux guest on KVM.\n\n"
    "Usage: minivmm --config vm.toml [--log_level=info]\n\n"
    "The config's [vm], [boot] and [serial] sections are documented in configs/example.toml.\n"
    "Exit codes: 0 guest powered off, 1 error, 3 guest rebooted with on_reboot = \"exit\",\n"
    "128+N stopped by signal N. On a terminal, Ctrl-A x quits.";

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
  absl::FlagsUsageConfig usage_config;
  usage_config.version_string = [] { return std::string("minivmm " MINIVMM_VERSION "\n"); };
  // --help lists only minivmm's own flags, not Abseil's internals.
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "vmm/main.cc");
  };
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);

  if (positional.size() > 1) {
    std::fprintf(stderr, "minivmm: unexpected argument '%s' (see minivmm --help)\n", positional[1]);
    return minivmm::kExitError;
  }
  minivmm::LogLevel level;
  if (!ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::fprintf(stderr, "minivmm: --log_level must be debug, info, warning or error\n");
    return minivmm::kExitError;
  }
  minivmm::SetLogLevel(level);
  const std::string config_path = absl::GetFlag(FLAGS_config);
  if (config_path.empty()) {
    std::fprintf(stderr, "minivmm: no VM given: pass --config vm.toml (see minivmm --help)\n");
    return minivmm::kExitError;
  }
  absl::StatusOr<minivmm::VmConfig> config = minivmm::LoadVmConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "minivmm: %s\n", std::string(config.status().message()).c_str());
    return minivmm::kExitError;
  }
  absl::StatusOr<int> exit_code = minivmm::RunVm(*config, start);
  if (!exit_code.ok()) {
    std::fprintf(stderr, "minivmm: %s\n", std::string(exit_code.status().message()).c_str());
    return minivmm::kExitError;
  }
  return *exit_code;
}
