# shellcheck shell=bash
# Shared steps of the integration tests (tests/integration/cases/*.sh). Sourced.
#
# A test calls `vmtest_enter_kvm "$@"` first: where this machine cannot run KVM guests the
# test re-runs itself, whole, inside the nested L1 guest (run-in-l1.sh), so every check below
# happens next to a real /dev/kvm. The guest images are prepared before that, on the host,
# because L1 sees the host's files read-only.

vmtest_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../harness.sh
. "$vmtest_dir/harness.sh"

: "${MINIVMM_BIN:=$(cd "$vmtest_dir/../.." && pwd)/build/minivmm}"
export MINIVMM_BIN

vmtest_enter_kvm() {
	if [ -z "${MINIVMM_L1:-}" ]; then
		[ -x "$MINIVMM_BIN" ] || vmtest_fail "minivmm binary $MINIVMM_BIN not built (meson compile -C build)"
		MINIVMM_GUEST_KERNEL=$(minivmm_guest_kernel)
		MINIVMM_GUEST_INITRAMFS=$(minivmm_l2_initramfs)
		MINIVMM_GUEST_VMLINUX=$(minivmm_guest_vmlinux)
		export MINIVMM_GUEST_KERNEL MINIVMM_GUEST_INITRAMFS MINIVMM_GUEST_VMLINUX
		if [ "$(minivmm_harness_mode)" = nested ]; then
			echo "vm-test: no usable KVM here: running ${0##*/} inside the nested L1 guest"
			exec "$vmtest_dir/run-in-l1.sh" --timeout "${MINIVMM_TEST_TIMEOUT:-400}" -- "$0" "$@"
		fi
	fi
	vmtest_work=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-test.XXXXXX")
	trap 'rm -rf "$vmtest_work"' EXIT
}

vmtest_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# vmtest_config FILE ACTION [EXTRA_VM_KEYS...]: writes a vm.toml that boots the test guest with
# minivmm.test=ACTION; extra lines go into [vm]. $VMTEST_KERNEL overrides the kernel and
# $VMTEST_BOOT_KEYS adds lines to [boot].
vmtest_config() {
	local file=$1 action=$2
	shift 2
	{
		echo "[vm]"
		echo "name = \"it-${action}\""
		echo "memory_mib = 256"
		for line in "$@"; do echo "$line"; done
		echo "[boot]"
		echo "kernel = \"${VMTEST_KERNEL:-$MINIVMM_GUEST_KERNEL}\""
		[ -z "${VMTEST_BOOT_KEYS:-}" ] || echo "$VMTEST_BOOT_KEYS"
		echo "initramfs = \"${VMTEST_INITRAMFS:-$MINIVMM_GUEST_INITRAMFS}\""
		echo "cmdline = \"console=ttyS0 quiet panic=-1 minivmm.test=${action}\""
	} >"$file"
}

# vmtest_guest_script SCRIPT OUT [FILE...]: OUT = the test initramfs plus a second cpio archive
# holding SCRIPT as /test.sh, which the guest runs with minivmm.test=run, and each FILE in /bin.
# (Linux unpacks concatenated archives in order, so the second one adds to the first.)
vmtest_guest_script() {
	local script=$1 out=$2 stage file
	shift 2
	stage=$(mktemp -d "$vmtest_work/script.XXXXXX")
	cp "$script" "$stage/test.sh"
	mkdir "$stage/bin"
	for file in "$@"; do cp "$file" "$stage/bin/"; done
	cp "$MINIVMM_GUEST_INITRAMFS" "$out"
	# The kernel looks for the next archive only at 4-byte boundaries; zero padding is skipped
	# (Documentation/driver-api/early-userspace/buffer-format.rst).
	local pad=$(((4 - $(stat -c %s "$out") % 4) % 4))
	head -c "$pad" /dev/zero >>"$out"
	(cd "$stage" && { echo test.sh; for file in bin/*; do [ ! -e "$file" ] || echo "$file"; done; } |
		cpio --quiet -o -H newc -R 0:0) >>"$out"
}

# vmtest_run NAME CONFIG [TIMEOUT]: runs minivmm with stdin from /dev/null (or $VMTEST_STDIN),
# stdout in $vmtest_work/NAME.out, stderr in NAME.err; sets vmtest_rc.
vmtest_run() {
	local name=$1 config=$2 limit=${3:-240}
	set +e
	timeout -k 5 "$limit" "$MINIVMM_BIN" --config "$config" \
		<"${VMTEST_STDIN:-/dev/null}" >"$vmtest_work/$name.out" 2>"$vmtest_work/$name.err"
	vmtest_rc=$?
	set -e
	echo "--- $name: exit code $vmtest_rc; minivmm's log:"
	cat "$vmtest_work/$name.err"
	echo "--- $name: guest console (last 15 lines):"
	tail -n 15 "$vmtest_work/$name.out"
}

# vmtest_start_until NAME TEXT MINIVMM_ARGS...: starts minivmm in the background (stdout in
# $vmtest_work/NAME.out, stderr in NAME.err) and waits up to 120 s for TEXT on the guest
# console; sets vmtest_pid. Fails, killing minivmm, if TEXT never comes.
vmtest_start_until() {
	local name=$1 text=$2
	shift 2
	"$MINIVMM_BIN" "$@" </dev/null >"$vmtest_work/$name.out" 2>"$vmtest_work/$name.err" &
	vmtest_pid=$!
	for _ in $(seq 1 240); do
		grep -qF -- "$text" "$vmtest_work/$name.out" && return 0
		kill -0 "$vmtest_pid" 2>/dev/null || break
		sleep 0.5
	done
	kill -KILL "$vmtest_pid" 2>/dev/null || true
	cat "$vmtest_work/$name.err"
	echo "--- $name: guest console (last 15 lines):"
	tail -n 15 "$vmtest_work/$name.out"
	vmtest_fail "$name: the guest did not print $text"
}

# vmtest_l1_nics: sets bdf (the NIC bound to vfio-pci) and peer (the interface of its peer NIC)
# from the harness's L1, or fails.
vmtest_l1_nics() {
	bdf=${MINIVMM_L1_VFIO_BDF:-}
	peer=${MINIVMM_L1_PEER_IF:-}
	[ -n "$bdf" ] && [ -n "$peer" ] || vmtest_fail "needs the harness's L1 (a vfio-pci NIC and its peer)"
}

vmtest_expect_rc() {
	[ "$vmtest_rc" -eq "$1" ] || vmtest_fail "expected exit code $1, got $vmtest_rc"
}

# vmtest_expect_in NAME.out|NAME.err TEXT: the file contains TEXT (fixed string).
vmtest_expect_in() {
	grep -qF -- "$2" "$vmtest_work/$1" || vmtest_fail "$1 lacks '$2'"
}

vmtest_pass() {
	echo "PASS: ${0##*/}"
}
