#!/usr/bin/env bash
# With on_reboot = "exit", `reboot -f` in the guest ends minivmm with the documented exit
# code 3.
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

vmtest_config "$vmtest_work/vm.toml" reboot "vcpus = 1" 'on_reboot = "exit"'
vmtest_run reboot "$vmtest_work/vm.toml"
vmtest_expect_rc 3
vmtest_expect_in reboot.out "MINIVMM-L2-REBOOT"
vmtest_expect_in reboot.err "guest rebooted: exiting with code 3"
vmtest_pass
