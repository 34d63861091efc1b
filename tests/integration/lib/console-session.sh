# shellcheck shell=bash
# An interactive console session with minivmm, for tests that type at the guest: minivmm
# reads a FIFO the test writes (fd 3) and its output goes to a file the test watches. Every
# wait is bounded and every step is reported as it happens. Sourced after vm-test.sh.

# session_start NAME CONFIG: starts minivmm; sets session_pid, session_out, session_err.
session_start() {
	session_name=$1
	local fifo=$vmtest_work/$1.stdin
	session_out=$vmtest_work/$1.out
	session_err=$vmtest_work/$1.err
	mkfifo "$fifo"
	"$MINIVMM_BIN" --config "$2" <"$fifo" >"$session_out" 2>"$session_err" &
	session_pid=$!
	exec 3>"$fifo"
}

session_step() { echo "$session_name: [${SECONDS}s] $*"; }

session_logs() {
	echo "--- minivmm's log:"
	cat "$session_err"
	echo "--- console (last 10 lines):"
	tail -n 10 "$session_out"
}

# session_type TEXT: sends TEXT (printf format without arguments) to the guest.
session_type() {
	# shellcheck disable=SC2059  # the text is the format on purpose (\n)
	printf "$1" >&3
}

# session_wait_for TEXT SECONDS: until the console shows TEXT; false if it does not in time or
# minivmm exits.
session_wait_for() {
	local i
	for ((i = 0; i < $2 * 2; i++)); do
		grep -qF -- "$1" "$session_out" && return 0
		kill -0 "$session_pid" 2>/dev/null || return 1
		sleep 0.5
	done
	return 1
}

# session_end SECONDS: waits that long for minivmm to exit, then SIGTERM, then SIGKILL (a VMM
# that ignores SIGTERM fails the test); sets vmtest_rc and closes the input.
session_end() {
	local i
	for ((i = 0; i < 2 * $1; i++)); do kill -0 "$session_pid" 2>/dev/null || break; sleep 0.5; done
	if kill -0 "$session_pid" 2>/dev/null; then
		session_step "minivmm still running after $1 s: sending SIGTERM"
		kill -TERM "$session_pid" 2>/dev/null || true
		for ((i = 0; i < 20; i++)); do kill -0 "$session_pid" 2>/dev/null || break; sleep 0.5; done
		if kill -0 "$session_pid" 2>/dev/null; then
			kill -KILL "$session_pid" 2>/dev/null || true
			session_logs
			vmtest_fail "minivmm ignored SIGTERM for 10 s"
		fi
	fi
	set +e
	wait "$session_pid"
	vmtest_rc=$?
	set -e
	exec 3>&-
}

# session_fail MESSAGE: stops minivmm, shows its logs and fails the test.
session_fail() {
	session_step "FAIL: $*"
	session_end 0
	session_logs
	vmtest_fail "$*"
}
