#!/usr/bin/env bash
# Body of selftest.sh: runs inside L1 (or directly on a host with KVM).
# Checks the devices a VMM needs, then boots the L2 test initramfs with
# Debian's QEMU (-accel kvm) as a stand-in VMM, once per L2 action, and
# prints how long each boot took.
# Usage: selftest-in-l1.sh KERNEL L2_INITRAMFS
set -euo pipefail

kernel=$1
initrd=$2
fail=0
bad() { echo "SELFTEST FAIL: $*"; fail=1; }

[ -c /dev/kvm ] || bad "no /dev/kvm"
if [ "${MINIVMM_L1:-0}" = 1 ]; then
	if [ -n "${MINIVMM_L1_VFIO_GROUP:-}" ] && [ -c "/dev/vfio/$MINIVMM_L1_VFIO_GROUP" ]; then
		echo "selftest: VFIO group $MINIVMM_L1_VFIO_GROUP for $MINIVMM_L1_VFIO_BDF"
	else
		bad "no VFIO group for the passthrough NIC"
	fi
	[ -n "${MINIVMM_L1_PEER_IF:-}" ] || bad "no peer NIC in L1"
	grep -qw svm /proc/cpuinfo || bad "L1 CPU lacks svm"
	# Writable places the VMM tests rely on.
	if ! { touch /tmp/selftest.$$ && rm /tmp/selftest.$$; }; then bad "/tmp not writable"; fi
	touch "$MINIVMM_L1_RESULTS_DIR/selftest" || bad "results dir not writable"
fi

# One QEMU boot of L2 with the given action; the console goes through a
# single perl process that stamps each line with seconds since start (a
# per-line `date` fork would distort timings under TCG).
boot_l2() {
	local action=$1 expect=$2 log rc
	log=$(mktemp /tmp/selftest-l2.XXXXXX)
	set +e
	timeout 120 qemu-system-x86_64 -accel kvm -M microvm -cpu host \
		-smp 2 -m 256 -nographic -no-reboot \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 quiet panic=-1 minivmm.test=$action" \
		</dev/null 2>&1 |
		perl -e '$|=1; use Time::HiRes "time"; $t0=time;
			while (<STDIN>) { s/\r//g; printf "  [%6.2f] %s", time-$t0, $_ }
			printf "  [%6.2f] (qemu exited)\n", time-$t0' >"$log"
	rc=${PIPESTATUS[0]}
	set -e
	grep -v 'exceeds the recommended cpus' "$log" || true
	grep -q 'MINIVMM-L2-INIT cpus=2' "$log" || bad "L2 ($action): no 'MINIVMM-L2-INIT cpus=2'"
	grep -q "$expect" "$log" || bad "L2 ($action): no '$expect'"
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		bad "L2 ($action): QEMU did not exit within 120 s"
	fi
	rm -f "$log"
}

echo "selftest: L2 poweroff"
boot_l2 poweroff MINIVMM-L2-POWEROFF
echo "selftest: L2 reboot"
boot_l2 reboot MINIVMM-L2-REBOOT

if [ "$fail" = 0 ]; then
	echo "SELFTEST PASS"
fi
exit "$fail"
