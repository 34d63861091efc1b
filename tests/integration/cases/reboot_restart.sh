#!/usr/bin/env bash
# With on_reboot = "restart", a guest reboot boots the guest again: init runs a second time.
# The test guest reboots forever, so the test then stops minivmm with SIGTERM and expects a
# clean exit with 128 + 15.
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

vmtest_config "$vmtest_work/vm.toml" reboot "vcpus = 2" 'on_reboot = "restart"'
out=$vmtest_work/restart.out
err=$vmtest_work/restart.err
"$MINIVMM_BIN" --config "$vmtest_work/vm.toml" </dev/null >"$out" 2>"$err" &
pid=$!
for _ in $(seq 1 480); do
	[ "$(grep -c "MINIVMM-L2-INIT" "$out" || true)" -ge 2 ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.5
done
kill -TERM "$pid" 2>/dev/null || true
set +e
wait "$pid"
vmtest_rc=$?
set -e
echo "--- exit code $vmtest_rc; minivmm's log:"
cat "$err"
[ "$(grep -c "MINIVMM-L2-INIT" "$out" || true)" -ge 2 ] || vmtest_fail "init did not run twice"
vmtest_expect_in restart.err "guest rebooted: restarting"
vmtest_expect_in restart.err "boot 2"
vmtest_expect_rc 143
vmtest_expect_in restart.err "stopped by signal 15"
vmtest_pass
