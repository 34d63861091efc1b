#!/usr/bin/env bash
# The guest boots to its init with 2 vCPUs online, writes the boot marker, and `poweroff -f`
# in the guest makes minivmm exit 0.
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

vmtest_config "$vmtest_work/vm.toml" poweroff "vcpus = 2"
vmtest_run boot "$vmtest_work/vm.toml"
vmtest_expect_rc 0
vmtest_expect_in boot.out "MINIVMM-L2-INIT cpus=2"
vmtest_expect_in boot.out "MINIVMM-L2-POWEROFF"
vmtest_expect_in boot.err "boot marker: guest init started"
vmtest_expect_in boot.err "guest powered off"
# The exit statistics: port I/O exits were counted, and the boot marker time is reported.
grep -qE "vCPU exits: io=[1-9][0-9]* .*; boot marker at [0-9.]+ s" "$vmtest_work/boot.err" ||
	vmtest_fail "no exit statistics with the boot marker time"
vmtest_pass
