#!/usr/bin/env bash
# virtio-console as the console: with [console] device = "virtio" and console=hvc0, the guest's
# shell runs on /dev/hvc0; a line typed on minivmm's stdin reaches it and its answer comes back
# on stdout. (Kernel messages before the driver loads have nowhere to go: that is expected.)
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

w=$vmtest_work
vmtest_config "$w/vm.toml" shell "vcpus = 1"
sed -i 's/console=ttyS0/console=hvc0/' "$w/vm.toml"
printf '[console]\ndevice = "virtio"\n' >>"$w/vm.toml"
fifo=$w/stdin
out=$w/hvc.out
err=$w/hvc.err
mkfifo "$fifo"
"$MINIVMM_BIN" --config "$w/vm.toml" <"$fifo" >"$out" 2>"$err" &
pid=$!
exec 3>"$fifo"

step() { echo "virtio_console: [${SECONDS}s] $*"; }
show_logs() {
	echo "--- minivmm's log:"
	cat "$err"
	echo "--- console (last 10 lines):"
	tail -n 10 "$out"
}
finish() {  # finish SECONDS: wait for minivmm to exit, then SIGTERM, then SIGKILL
	local i
	for ((i = 0; i < 2 * $1; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 20; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
	kill -KILL "$pid" 2>/dev/null || true
	set +e
	wait "$pid"
	vmtest_rc=$?
	set -e
}
wait_for() {  # wait_for TEXT SECONDS
	local i
	for ((i = 0; i < $2 * 2; i++)); do
		grep -qF -- "$1" "$out" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.5
	done
	return 1
}

step "waiting for the shell prompt on hvc0"
if ! wait_for "# " 120; then
	finish 0
	show_logs
	vmtest_fail "no shell prompt on hvc0"
fi
sleep 1
step "typing a command"
printf 'echo "hvc-$((6 * 7))"; cat /sys/class/tty/console/active\n' >&3
if ! wait_for "hvc-42" 60; then
	finish 0
	show_logs
	vmtest_fail "the guest did not run the command typed on hvc0"
fi
printf 'poweroff -f\n' >&3
finish 60
exec 3>&-
step "minivmm exited with $vmtest_rc"
show_logs
vmtest_expect_rc 0
vmtest_expect_in hvc.out "hvc-42"
vmtest_expect_in hvc.out "hvc0"
# The UART is not connected: nothing the guest wrote there may appear.
if grep -q "ttyS0" "$out"; then vmtest_fail "serial output reached the console"; fi
vmtest_pass
