#!/usr/bin/env bash
# Input reaches the guest through the 16550: a shell in the guest runs what minivmm reads on
# stdin, and the guest's answer comes back on stdout.
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

vmtest_config "$vmtest_work/vm.toml" shell "vcpus = 1"
# The shell starts after init's banner; input typed before that waits in the UART's FIFO and
# the tty's buffer, as it would on real hardware.
printf 'echo "answer-$((6 * 7))"\npoweroff -f\n' >"$vmtest_work/stdin"
VMTEST_STDIN=$vmtest_work/stdin vmtest_run shell "$vmtest_work/vm.toml"
vmtest_expect_rc 0
vmtest_expect_in shell.out "answer-42"
vmtest_pass
