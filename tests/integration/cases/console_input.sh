#!/usr/bin/env bash
# Input reaches the guest through the 16550: once the guest's shell shows its prompt, a
# command typed on minivmm's stdin runs in the guest and its answer comes back on stdout.
# (Like a person, the test waits for the prompt: Linux's 8250 driver clears the UART's FIFO
# when the tty is opened, so bytes sent during boot are dropped, as on real hardware.)
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
. "$(dirname "$0")/../lib/console-session.sh"
vmtest_enter_kvm "$@"

vmtest_config "$vmtest_work/vm.toml" shell "vcpus = 1"
session_start shell "$vmtest_work/vm.toml"
session_step "waiting for the guest's shell prompt"
session_wait_for "# " 120 || session_fail "no shell prompt on the console"
sleep 1
session_step "typing a command"
session_type 'echo "answer-$((6 * 7))"\n'
session_wait_for "answer-42" 60 || session_fail "the guest did not run the typed command"
session_step "typing poweroff"
session_type 'poweroff -f\n'
session_end 60
session_step "minivmm exited with $vmtest_rc"
session_logs
vmtest_expect_rc 0
vmtest_expect_in shell.out "answer-42"
vmtest_pass
