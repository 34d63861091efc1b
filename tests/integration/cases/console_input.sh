#!/usr/bin/env bash
# Input reaches the guest through the 16550: once the guest's shell shows its prompt, a
# command typed on minivmm's stdin runs in the guest and its answer comes back on stdout.
# (Like a person, the test waits for the prompt: Linux's 8250 driver clears the UART's FIFO
# when the tty is opened, so bytes sent during boot are dropped, as on real hardware.)
# Every step is bounded and reported as it happens, so a hang shows where it was (the L1
# console streams this output) instead of ending in the harness's silent timeout.
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

step() { echo "console_input: [${SECONDS}s] $*"; }

show_logs() {
	echo "--- minivmm's log:"
	cat "$err"
	echo "--- console (last 10 lines):"
	tail -n 10 "$out"
}

# Stops minivmm if it is still running (SIGTERM, then SIGKILL: a VMM that ignores SIGTERM is
# itself a failure) and sets vmtest_rc.
reap() {
	local i
	for ((i = 0; i < 2 * $1; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
	if kill -0 "$pid" 2>/dev/null; then
		step "minivmm still running after $1 s: sending SIGTERM"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 20; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null || true
			show_logs
			vmtest_fail "minivmm ignored SIGTERM for 10 s"
		fi
	fi
	set +e
	wait "$pid"
	vmtest_rc=$?
	set -e
}

fail() {
	step "FAIL: $*"
	reap 0
	show_logs
	vmtest_fail "$*"
}

wait_for() {  # wait_for TEXT SECONDS: until the console shows TEXT
	local i
	for ((i = 0; i < $2 * 2; i++)); do
		grep -qF -- "$1" "$out" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.5
	done
	return 1
}

step "waiting for the guest's shell prompt"
wait_for "# " 120 || fail "no shell prompt on the console"
sleep 1
step "typing a command"
printf 'echo "answer-$((6 * 7))"\n' >&3
wait_for "answer-42" 60 || fail "the guest did not run the typed command"
step "typing poweroff"
printf 'poweroff -f\n' >&3
reap 60
exec 3>&-
step "minivmm exited with $vmtest_rc"
show_logs
vmtest_expect_rc 0
vmtest_expect_in shell.out "answer-42"
vmtest_pass
