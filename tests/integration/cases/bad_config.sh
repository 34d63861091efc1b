#!/usr/bin/env bash
# User errors end in one clear message and exit code 1, before the guest starts: a config
# value out of range (with file:line:col), a missing kernel, a kernel that is no bzImage, and a
# --seccomp value that is neither on nor off.
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

cfg=$vmtest_work/vm.toml
printf '[vm]\nvcpus = 2\nmemory_mib = 0\n[boot]\nkernel = "%s"\n' "$MINIVMM_GUEST_KERNEL" >"$cfg"
vmtest_run zero_memory "$cfg" 30
vmtest_expect_rc 1
vmtest_expect_in zero_memory.err "vm.toml:3:14: [vm] memory_mib must be between 32 and 1048576, got 0"

printf '[boot]\nkernel = "no-such-vmlinuz"\n' >"$cfg"
vmtest_run missing_kernel "$cfg" 30
vmtest_expect_rc 1
vmtest_expect_in missing_kernel.err "no-such-vmlinuz"

printf '[boot]\nkernel = "%s"\n' "$MINIVMM_GUEST_INITRAMFS" >"$cfg"
vmtest_run not_bzimage "$cfg" 30
vmtest_expect_rc 1
vmtest_expect_in not_bzimage.err "not a bzImage"
[ ! -s "$vmtest_work/not_bzimage.out" ] || vmtest_fail "the guest printed something: it ran"

# A --seccomp value that is neither on nor off is refused, not taken for either.
printf '[boot]\nkernel = "%s"\n' "$MINIVMM_GUEST_KERNEL" >"$cfg"
set +e
"$MINIVMM_BIN" --seccomp=maybe --config "$cfg" </dev/null >"$vmtest_work/seccomp.out" 2>"$vmtest_work/seccomp.err"
vmtest_rc=$?
set -e
cat "$vmtest_work/seccomp.err"
vmtest_expect_rc 1
vmtest_expect_in seccomp.err "--seccomp must be on or off, got 'maybe'"
[ ! -s "$vmtest_work/seccomp.out" ] || vmtest_fail "the guest printed something: it ran"
vmtest_pass
