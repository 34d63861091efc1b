#!/usr/bin/env bash
# Input reaches the guest through the 16550: once the guest's shell shows its prompt, a
# command typed on minivmm's stdin runs in the guest and its answer comes back on stdout.
# (Like a person, the test waits for the prompt: Linux's 8250 driver clears the UART's FIFO
# when the tty is opened, so bytes sent during boot are dropped, as on real hardware.)
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

vmtest_config "$vmtest_work/vm.toml" shell "vcpus = 1"
fifo=$vmtest_work/stdin
out=$vmtest_work/shell.out
err=$vmtest_work/shell.err
mkfifo "$fifo"
"$MINIVMM_BIN" --config "$vmtest_work/vm.toml" <"$fifo" >"$out" 2>"$err" &
pid=$!
exec 3>"$fifo"

wait_for() {  # wait_for TEXT SECONDS: until the console shows TEXT
	local i
	for ((i = 0; i < $2 * 2; i++)); do
		grep -qF -- "$1" "$out" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.5
	done
	return 1
}

wait_for "# " 240 || vmtest_fail "no shell prompt on the console"
sleep 1
printf 'echo "answer-$((6 * 7))"\n' >&3
wait_for "answer-42" 60 || vmtest_fail "the guest did not run the typed command"
printf 'poweroff -f\n' >&3
for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
kill -TERM "$pid" 2>/dev/null || true
set +e
wait "$pid"
vmtest_rc=$?
set -e
exec 3>&-
echo "--- exit code $vmtest_rc; minivmm's log:"
cat "$err"
echo "--- console (last 10 lines):"
tail -n 10 "$out"
vmtest_expect_rc 0
vmtest_expect_in shell.out "answer-42"
vmtest_pass
