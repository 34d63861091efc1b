#!/usr/bin/env bash
# virtio-console as the console: with [console] device = "virtio" and console=hvc0, the guest's
# shell runs on /dev/hvc0; a line typed on minivmm's stdin reaches it and its answer comes back
# on stdout. (Kernel messages before the driver loads have nowhere to go: that is expected.)
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
. "$(dirname "$0")/../lib/console-session.sh"
vmtest_enter_kvm "$@"

vmtest_config "$vmtest_work/vm.toml" shell "vcpus = 1"
sed -i 's/console=ttyS0/console=hvc0/' "$vmtest_work/vm.toml"
printf '[console]\ndevice = "virtio"\n' >>"$vmtest_work/vm.toml"
session_start hvc "$vmtest_work/vm.toml"
session_step "waiting for the shell prompt on hvc0"
session_wait_for "# " 120 || session_fail "no shell prompt on hvc0"
sleep 1
session_step "typing a command"
session_type 'echo "hvc-$((6 * 7))"; cat /sys/class/tty/console/active\n'
session_wait_for "hvc-42" 60 || session_fail "the guest did not run the command typed on hvc0"
session_type 'poweroff -f\n'
session_end 60
session_step "minivmm exited with $vmtest_rc"
session_logs
vmtest_expect_rc 0
vmtest_expect_in hvc.out "hvc-42"
vmtest_expect_in hvc.out "hvc0"
# The UART is not connected: nothing the guest wrote there may appear.
if grep -q "ttyS0" "$vmtest_work/hvc.out"; then vmtest_fail "serial output reached the console"; fi
vmtest_pass
