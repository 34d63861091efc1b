#!/usr/bin/env bash
# The same guest reaches init with 2 CPUs and powers off with exit 0 in every kernel mode:
# the guest decompressing its bzImage, a cold kernel cache (minivmm decompresses and stores),
# a warm cache (the stored vmlinux boots, nothing is decompressed), a vmlinux ELF given
# directly, and an unwritable cache directory (one warning, then a guest-decompressed boot).
# Cached boots keep KASLR: minivmm relocates the kernel to random addresses.
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
vmtest_expect_in warm.err "KASLR"
no_line warm.err "decompressed"

# KASLR on the cached path: the kernel's own symbol table says where _text runs. With
# "nokaslr" it is the link address; three cached boots must not all share one address (two
# random picks among ~470 slots collide 1 time in 470; three, 1 in 220000).
cat >"$vmtest_work/kaslr.sh" <<'GUEST'
echo "TEXT: $(grep -m1 ' _text$' /proc/kallsyms | cut -d' ' -f1)"
GUEST
vmtest_guest_script "$vmtest_work/kaslr.sh" "$vmtest_work/kaslr.cpio"
text_of() { sed -n 's/^TEXT: \([0-9a-f]*\).*/\1/p' "$vmtest_work/$1.out" | head -n1; }
VMTEST_INITRAMFS=$vmtest_work/kaslr.cpio vmtest_config "$cfg" run "vcpus = 2"
sed -i 's/minivmm.test=run/minivmm.test=run nokaslr/' "$cfg"
vmtest_run nokaslr "$cfg"
vmtest_expect_rc 0
[ "$(text_of nokaslr)" = ffffffff81000000 ] ||
	vmtest_fail "with nokaslr _text is '$(text_of nokaslr)', expected the link address ffffffff81000000"
sed -i 's/ nokaslr//' "$cfg"
for n in 1 2 3; do
	vmtest_run "kaslr$n" "$cfg"
	vmtest_expect_rc 0
	vmtest_expect_in "kaslr$n.err" "KASLR"
	[ -n "$(text_of "kaslr$n")" ] || vmtest_fail "boot $n printed no _text address"
done
echo "_text in three cached boots: $(text_of kaslr1) $(text_of kaslr2) $(text_of kaslr3)"
[ "$(printf '%s\n' "$(text_of kaslr1)" "$(text_of kaslr2)" "$(text_of kaslr3)" | sort -u | wc -l)" -ge 2 ] ||
	vmtest_fail "three cached boots all ran the kernel at $(text_of kaslr1): no KASLR"

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
