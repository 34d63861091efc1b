#!/usr/bin/env bash
# The same guest reaches init with 2 CPUs and powers off with exit 0 in every kernel mode:
# the guest decompressing its bzImage, a cold kernel cache (minivmm decompresses and stores),
# a warm cache (the stored vmlinux boots, nothing is decompressed), a vmlinux ELF given
# directly, and an unwritable cache directory (one warning, then a guest-decompressed boot).
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

boot_ok() {  # boot_ok NAME: the guest booted with 2 CPUs and powered off
	vmtest_expect_rc 0
	vmtest_expect_in "$1.out" "MINIVMM-L2-INIT cpus=2"
	vmtest_expect_in "$1.out" "MINIVMM-L2-POWEROFF"
	vmtest_expect_in "$1.err" "boot marker: guest init started"
}
no_line() {  # no_line FILE TEXT
	! grep -qF -- "$2" "$vmtest_work/$1" || vmtest_fail "$1 has '$2'"
}

export XDG_CACHE_HOME=$vmtest_work/cache
cfg=$vmtest_work/vm.toml

VMTEST_BOOT_KEYS='decompress = "guest"' vmtest_config "$cfg" poweroff "vcpus = 2"
vmtest_run guest "$cfg"
boot_ok guest
no_line guest.err "kernel:"
[ ! -d "$XDG_CACHE_HOME/minivmm" ] || vmtest_fail "decompress = \"guest\" wrote the cache"

vmtest_config "$cfg" poweroff "vcpus = 2"
vmtest_run cold "$cfg"
boot_ok cold
vmtest_expect_in cold.err "kernel: decompressed the xz payload"
ls "$XDG_CACHE_HOME"/minivmm/*.vmlinux >/dev/null || vmtest_fail "no cache entry after a cold boot"

vmtest_run warm "$cfg"
boot_ok warm
vmtest_expect_in warm.err "kernel: using the cached vmlinux"
no_line warm.err "decompressed"

VMTEST_KERNEL=$MINIVMM_GUEST_VMLINUX vmtest_config "$cfg" poweroff "vcpus = 2"
vmtest_run vmlinux "$cfg"
boot_ok vmlinux
no_line vmlinux.err "kernel:"

touch "$vmtest_work/not-a-directory"
XDG_CACHE_HOME=$vmtest_work/not-a-directory vmtest_config "$cfg" poweroff "vcpus = 2"
XDG_CACHE_HOME=$vmtest_work/not-a-directory vmtest_run unwritable "$cfg"
boot_ok unwritable
vmtest_expect_in unwritable.err "the guest decompresses it"
[ "$(grep -c "warning" "$vmtest_work/unwritable.err")" -eq 1 ] || vmtest_fail "expected exactly one warning"
vmtest_pass
