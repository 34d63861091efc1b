#!/usr/bin/env bash
# A script drives a running guest through the API socket with `minivmm ctl`: info, pause (the
# guest's clock-driven console ticks stop while paused), resume (they go on), reboot (init runs
# again, boot 2), shutdown while paused (minivmm exits 0 and removes its socket). A second
# minivmm given the same socket is refused before it builds a VM, and leaves the first one's
# socket working.
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

cat >"$vmtest_work/ticks.sh" <<'GUEST'
i=0
while :; do
	i=$((i + 1))
	echo "MINIVMM-TICK $i"
	sleep 1
done
GUEST
VMTEST_INITRAMFS=$vmtest_work/initramfs.cpio
vmtest_guest_script "$vmtest_work/ticks.sh" "$VMTEST_INITRAMFS"
vmtest_config "$vmtest_work/vm.toml" run "vcpus = 2"

sock=$vmtest_work/api.sock
out=$vmtest_work/api.out
err=$vmtest_work/api.err
"$MINIVMM_BIN" --config "$vmtest_work/vm.toml" --api_socket "$sock" </dev/null >"$out" 2>"$err" &
pid=$!
cleanup() {
	kill -KILL "$pid" 2>/dev/null || true
	rm -rf "$vmtest_work"
}
trap cleanup EXIT

ticks() { grep -c "MINIVMM-TICK" "$out" || true; }
# wait_for WHAT CONDITION: evaluates the shell CONDITION every 0.5 s, for up to 240 s, while
# minivmm runs.
wait_for() {
	local what=$1 condition=$2
	for _ in $(seq 1 480); do
		eval "$condition" && return 0
		kill -0 "$pid" 2>/dev/null || vmtest_fail "minivmm exited while waiting for $what: $(cat "$err")"
		sleep 0.5
	done
	vmtest_fail "timed out waiting for $what"
}
ctl() { "$MINIVMM_BIN" ctl --api_socket "$sock" "$@"; }
show() {
	echo "--- minivmm's log:"
	cat "$err"
	echo "--- guest console (last 10 lines):"
	tail -n 10 "$out"
}
trap 'show; cleanup' EXIT

wait_for "the guest's second tick" '[ "$(ticks)" -ge 2 ]'
info=$(ctl info)
echo "info: $info"
for field in '"state":"running"' '"boot":1' '"vcpus":2' '"name":"it-run"' '"init_started_after_s":' \
	'"reservation":{"reserved_mib":"0","pinned":false}'; do
	grep -qF "$field" <<<"$info" || vmtest_fail "info lacks $field"
done

# A second minivmm on the same socket: refused before any VM exists, first one untouched.
set +e
"$MINIVMM_BIN" --config "$vmtest_work/vm.toml" --api_socket "$sock" </dev/null \
	>"$vmtest_work/second.out" 2>"$vmtest_work/second.err"
second_rc=$?
set -e
cat "$vmtest_work/second.err"
[ "$second_rc" -eq 1 ] || vmtest_fail "second minivmm on the same socket exited $second_rc, not 1"
grep -qF "is in use by another process" "$vmtest_work/second.err" ||
	vmtest_fail "second minivmm did not say the socket is in use"
grep -qF "booting" "$vmtest_work/second.err" && vmtest_fail "second minivmm booted a VM"
ctl info >/dev/null || vmtest_fail "the first minivmm's socket stopped working"

paused=$(ctl pause)
grep -qF '"state":"paused"' <<<"$paused" || vmtest_fail "pause answered $paused"
before=$(ticks)
sleep 4
after=$(ticks)
[ "$after" -eq "$before" ] || vmtest_fail "the guest ticked while paused ($before -> $after)"
if ctl pause 2>"$vmtest_work/again.err"; then vmtest_fail "a second pause succeeded"; fi
grep -qF "already paused (HTTP 409)" "$vmtest_work/again.err" ||
	vmtest_fail "second pause said: $(cat "$vmtest_work/again.err")"

ctl resume | grep -qF '"state":"running"' || vmtest_fail "resume did not answer running"
wait_for "ticks after resume" '[ "$(ticks)" -gt "$after" ]'

ctl reboot >/dev/null
wait_for "init of the second boot" '[ "$(grep -c MINIVMM-L2-INIT "$out" || true)" -ge 2 ]'
ctl info | grep -qF '"boot":2' || vmtest_fail "info after reboot is not boot 2"

# A shutdown while paused must still end minivmm: the held vCPUs are released to stop.
ctl pause >/dev/null
ctl shutdown >/dev/null
set +e
wait "$pid"
vmtest_rc=$?
set -e
vmtest_expect_rc 0
vmtest_expect_in api.err "paused through the API"
vmtest_expect_in api.err "resumed through the API"
vmtest_expect_in api.err "rebooting through the API"
vmtest_expect_in api.err "shut down through the API"
[ ! -e "$sock" ] || vmtest_fail "minivmm left its API socket $sock behind"
vmtest_pass
