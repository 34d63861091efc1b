#!/usr/bin/env bash
# Boot-time benchmark (prints a table; not a test). In one KVM environment -- the nested L1
# guest where this machine has no usable KVM -- it boots the same kernel, initramfs, memory,
# vCPUs and command line with, interleaved ROUNDS times:
#   minivmm guest  [boot] decompress = "guest": the guest decompresses its bzImage
#   minivmm cold   decompress = "auto" with an empty kernel cache: minivmm decompresses + stores
#   minivmm warm   decompress = "auto" with the cache filled: the cached vmlinux boots
#   qemu microvm   Debian's qemu-system-x86_64 -M microvm -accel kvm
#   kvmtool        when LKVM=/path/to/lkvm is set
# and prints the median seconds from the VMM's start to the guest's first init line
# (MINIVMM-L2-INIT), timestamped for every VMM by the same long-lived perl process, plus
# minivmm's own vCPU exit counts.
#
# Usage: tests/bench/boot_bench.sh [ROUNDS]      (default 3; MINIVMM_BIN overrides the binary)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/tests/integration/harness.sh"
rounds=${1:-3}
: "${MINIVMM_BIN:=$root/build/minivmm}"
export MINIVMM_BIN

if [ -z "${MINIVMM_L1:-}" ] && [ -z "${MINIVMM_BENCH_INSIDE:-}" ]; then
	[ -x "$MINIVMM_BIN" ] || { echo "boot_bench: build minivmm first (scripts/build.sh)" >&2; exit 1; }
	MINIVMM_GUEST_KERNEL=$(minivmm_guest_kernel)
	MINIVMM_GUEST_INITRAMFS=$(minivmm_l2_initramfs)
	export MINIVMM_GUEST_KERNEL MINIVMM_GUEST_INITRAMFS MINIVMM_BENCH_INSIDE=1
	[ -z "${LKVM:-}" ] || export MINIVMM_LKVM=$LKVM
	if [ "$(minivmm_harness_mode)" = nested ]; then
		echo "boot_bench: no usable KVM here: running inside the nested L1 guest (one session)"
		exec "$root/tests/integration/run-in-l1.sh" --timeout 1800 -- "$0" "$rounds"
	fi
	exec "$0" "$rounds"
fi

work=$(mktemp -d /tmp/minivmm-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Every VMM reads the same copies, from tmpfs, so no one pays for the 9p share.
cp "$MINIVMM_GUEST_KERNEL" "$work/vmlinuz"
cp "$MINIVMM_GUEST_INITRAMFS" "$work/initramfs"
cmdline="console=ttyS0 quiet panic=-1 minivmm.test=poweroff"
export XDG_CACHE_HOME=$work/cache
for mode in guest auto; do
	cat >"$work/$mode.toml" <<TOML
[vm]
vcpus = 2
memory_mib = 256
[boot]
kernel = "$work/vmlinuz"
initramfs = "$work/initramfs"
cmdline = "$cmdline"
decompress = "$mode"
[serial]
mode = "stdio"
TOML
done

# One line per contender: NAME<TAB>PREPARE-COMMAND<TAB>COMMAND (run by sh -c).
{
	printf 'minivmm guest\ttrue\t%q --config %q\n' "$MINIVMM_BIN" "$work/guest.toml"
	printf 'minivmm cold\t%q cache clear >/dev/null\t%q --config %q\n' "$MINIVMM_BIN" "$MINIVMM_BIN" "$work/auto.toml"
	printf 'minivmm warm\ttrue\t%q --config %q\n' "$MINIVMM_BIN" "$work/auto.toml"
	printf 'qemu microvm\ttrue\tqemu-system-x86_64 -M microvm -accel kvm -cpu host -smp 2 -m 256 -nodefaults -no-user-config -nographic -no-reboot -serial stdio -kernel %q -initrd %q -append %q\n' \
		"$work/vmlinuz" "$work/initramfs" "$cmdline"
	if [ -n "${MINIVMM_LKVM:-}" ]; then
		printf 'kvmtool\ttrue\t%q run -k %q -i %q -c 2 -m 256 -p %q\n' \
			"$MINIVMM_LKVM" "$work/vmlinuz" "$work/initramfs" "$cmdline"
	fi
} >"$work/contenders"

exec perl "$here/boot_bench_runner.pl" "$rounds" "$work/contenders"
