// minivmm's process exit codes (documented in README.md, "Exit codes").
#ifndef MINIVMM_VMM_BASE_EXIT_CODES_H_
#define MINIVMM_VMM_BASE_EXIT_CODES_H_

namespace minivmm {

inline constexpr int kExitPoweredOff = 0;   // the guest powered off, or vm.shutdown (API)
inline constexpr int kExitError = 1;        // configuration, host or VMM error
inline constexpr int kExitGuestReboot = 3;  // the guest rebooted and [vm] on_reboot = "exit"
// Stopped by SIGINT/SIGTERM/SIGHUP: 128 + the signal number, as a shell reports it.
inline constexpr int kExitSignalBase = 128;

}  // namespace minivmm

#endif  // MINIVMM_VMM_BASE_EXIT_CODES_H_
