# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
# Sourced by integration tests:
#
#   . "$(dirname "$0")/harness.sh"      # (adjust the path to this file)
#   run_vmm_env ./build/minivmm --kernel "$(minivmm_guest_kernel)" ...
#
# Two ways to get a KVM-capable environment:
#   direct  the host's /dev/kvm works: commands run here, as is.
#   nested  no usable /dev/kvm (CI, containers): commands run inside an L1
#           guest under QEMU TCG that has /dev/kvm (run-in-l1.sh). Slow
#           (~7 s to start L1, ~10 s for an L2 boot) but needs nothing from
#           the host but qemu-system-x86, linux-image-amd64, busybox-static.
# MINIVMM_HARNESS=nested|direct forces a mode. Tests that need the VFIO NIC
# (only the nested L1 has one) should force nested for that call:
#   MINIVMM_HARNESS=nested run_vmm_env ...
# In nested mode the command sees MINIVMM_L1=1, MINIVMM_L1_VFIO_BDF,
# MINIVMM_L1_VFIO_GROUP, MINIVMM_L1_PEER_IF, MINIVMM_L1_RESULTS_DIR.

MINIVMM_HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# True if /dev/kvm can be opened read-write and answers KVM_GET_API_VERSION
# (12) and KVM_CREATE_VM: a node that exists but is not backed by a working
# KVM (some containers) fails here instead of hanging a test later.
minivmm_kvm_usable() {
	[ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
	# A /dev/kvm with no VT-x/AMD-V under it (seen inside some sandboxes' VMs) answers the
	# ioctls below yet cannot run a Linux guest: it spins in the kernel. Trust only KVM
	# on a CPU that advertises hardware virtualization.
	grep -qwE 'vmx|svm' /proc/cpuinfo || return 1
	if command -v perl >/dev/null 2>&1; then
		perl -e '
			open(my $k, "+<", "/dev/kvm") or exit 1;
			my $v = ioctl($k, 0xAE00, 0);          # KVM_GET_API_VERSION
			exit 1 unless defined $v && $v == 12;
			my $vm = ioctl($k, 0xAE01, 0);         # KVM_CREATE_VM
			exit(defined $vm ? 0 : 1);' 2>/dev/null
	else
		{ : <>/dev/kvm; } 2>/dev/null
	fi
}

# Print "direct" or "nested" (see above).
minivmm_harness_mode() {
	case ${MINIVMM_HARNESS:-} in
	nested | direct) echo "$MINIVMM_HARNESS"; return 0 ;;
	'' | auto) ;;
	*) echo "harness.sh: MINIVMM_HARNESS must be nested, direct or auto" >&2; return 2 ;;
	esac
	if minivmm_kvm_usable; then
		echo direct
	else
		echo nested
	fi
}

# Run CMD [ARGS...] where KVM works; returns its exit status (124: the
# nested run timed out, 125: L1 failed to run it).
# MINIVMM_HARNESS_TIMEOUT (seconds) bounds a nested run.
run_vmm_env() {
	local mode
	mode=$(minivmm_harness_mode) || return
	if [ "$mode" = direct ]; then
		"$@"
	else
		"$MINIVMM_HARNESS_DIR/run-in-l1.sh" -- "$@"
	fi
}

# Path of the guest kernel (the host's Debian kernel, also used for L1).
minivmm_guest_kernel() {
	(
		# shellcheck source=lib/common.sh
		. "$MINIVMM_HARNESS_DIR/lib/common.sh"
		harness_kernel
	)
}

# Build (cached) and print the path of the L2 test initramfs. The cache is
# on the host's disk, which L1 sees read-only at the same path.
minivmm_l2_initramfs() {
	(
		# shellcheck source=lib/common.sh
		. "$MINIVMM_HARNESS_DIR/lib/common.sh"
		local out
		out=$(harness_cache_dir)/l2.cpio.gz
		mkdir -p "${out%/*}"
		"$MINIVMM_HARNESS_DIR/lib/build-l2-initramfs.sh" "$out" >&2 || exit
		printf '%s\n' "$out"
	)
}

# Build (cached) and print the path of an uncompressed vmlinux (ELF) extracted from the guest
# kernel's xz payload, as the kernel's scripts/extract-vmlinux does: it is the "vmlinux given
# directly" case of the boot tests.
minivmm_guest_vmlinux() {
	(
		# shellcheck source=lib/common.sh
		. "$MINIVMM_HARNESS_DIR/lib/common.sh"
		local kernel out
		kernel=$(harness_kernel)
		out=$(harness_cache_dir)/vmlinux-$(basename "$kernel")
		if [ ! -s "$out" ] || [ "$out" -ot "$kernel" ]; then
			mkdir -p "${out%/*}"
			# Setup header (boot.rst): setup_sects at 0x1f1, payload_offset/length at 0x248.
			# The xz stream is followed by 4 bytes of size, which the decompressor leaves alone.
			python3 - "$kernel" "$out.tmp" <<'PY' || return 1
import lzma, struct, sys
data = open(sys.argv[1], "rb").read()
start = ((data[0x1f1] or 4) + 1) * 512 + struct.unpack_from("<I", data, 0x248)[0]
length = struct.unpack_from("<I", data, 0x24c)[0]
open(sys.argv[2], "wb").write(lzma.LZMADecompressor().decompress(data[start:start + length]))
PY
			mv "$out.tmp" "$out"
		fi
		printf '%s\n' "$out"
	)
}
