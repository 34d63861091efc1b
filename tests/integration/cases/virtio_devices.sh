#!/usr/bin/env bash
# Paravirtual devices on the PCI bus: the guest finds virtio-blk and virtio-rng functions with
# virtio's vendor/device IDs, reads a file from a disk image the test made, writes to a second
# disk (the data is in the image on the host afterwards), is refused writes to a read-only
# disk, reads entropy from /dev/hwrng, and its interrupts for the devices are MSI-X vectors.
# A second boot with pci=nomsi does the same over the legacy INTx lines (ACPI _PRT -> IOAPIC).
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

w=$vmtest_work
nonce=$$-$RANDOM
# Disk 1: a tar archive holding a known file (tar pads to 10 KiB, a multiple of 512).
mkdir "$w/tree"
echo "known-file-$nonce" >"$w/tree/known.txt"
tar -C "$w/tree" -cf "$w/data.img" known.txt
# Disk 2: empty scratch space the guest writes to. Disk 3: the same, attached read-only.
truncate -s 1M "$w/scratch.img"
head -c 1048576 /dev/urandom >"$w/readonly.img"
readonly_sum=$(sha256sum <"$w/readonly.img")

cat >"$w/test.sh" <<GUEST
disk() { for b in /sys/block/vd*; do [ "\$(cat \$b/serial)" = "\$1" ] && echo /dev/\${b##*/}; done; }
for d in /sys/bus/pci/devices/*; do
	drv=\$(readlink \$d/driver); echo "PCI \${d##*/} \$(cat \$d/vendor):\$(cat \$d/device) driver=\${drv##*/}"
done
data=\$(disk data-disk); scratch=\$(disk scratch-disk); ro=\$(disk ro-disk)
echo "DISKS data=\$data scratch=\$scratch ro=\$ro"
cd /tmp && tar -xf "\$data" known.txt && echo "KNOWN: \$(cat known.txt)"
echo "written-$nonce" | dd of="\$scratch" bs=512 seek=8 conv=fsync 2>/dev/null && echo "SCRATCH-WRITE: ok"
if echo x | dd of="\$ro" bs=512 conv=fsync 2>/dev/null; then echo "RO-WRITE: accepted"; else echo "RO-WRITE: refused"; fi
echo "RO-FLAG: \$(cat /sys/block/\${ro#/dev/}/ro)"
echo "RNG: \$(cat /sys/class/misc/hw_random/rng_current)"
echo "RNG-BYTES: \$(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | wc -c)"
grep virtio /proc/interrupts | sed 's/^/IRQ: /'
GUEST
vmtest_guest_script "$w/test.sh" "$w/initramfs"
VMTEST_INITRAMFS=$w/initramfs vmtest_config "$w/vm.toml" run "vcpus = 2"
cat >>"$w/vm.toml" <<TOML
[[disk]]
path = "$w/data.img"
serial = "data-disk"
[[disk]]
path = "$w/scratch.img"
serial = "scratch-disk"
[[disk]]
path = "$w/readonly.img"
read_only = true
serial = "ro-disk"
[rng]
TOML

vmtest_run devices "$w/vm.toml"
grep -E "^(PCI|DISKS|KNOWN|SCRATCH|RO-|RNG|IRQ)" "$w/devices.out" || true
vmtest_expect_rc 0
vmtest_expect_in devices.out "0x1af4:0x1042 driver=virtio-pci"
vmtest_expect_in devices.out "0x1af4:0x1044 driver=virtio-pci"
vmtest_expect_in devices.out "KNOWN: known-file-$nonce"
vmtest_expect_in devices.out "SCRATCH-WRITE: ok"
vmtest_expect_in devices.out "RO-WRITE: refused"
vmtest_expect_in devices.out "RO-FLAG: 1"
vmtest_expect_in devices.out "RNG: virtio_rng.0"
vmtest_expect_in devices.out "RNG-BYTES: 32"
grep -q "^IRQ: .*PCI-MSI.*virtio" "$w/devices.out" ||
	vmtest_fail "no PCI-MSI(-X) interrupt lines for virtio devices in /proc/interrupts"
dd if="$w/scratch.img" bs=512 skip=8 count=1 2>/dev/null | grep -q "written-$nonce" ||
	vmtest_fail "the guest's write is not in scratch.img"
[ "$(sha256sum <"$w/readonly.img")" = "$readonly_sum" ] || vmtest_fail "readonly.img changed"

# INTx: the same guest without MSI; the drivers share the level-triggered lines.
sed -i 's/minivmm.test=run/minivmm.test=run pci=nomsi/' "$w/vm.toml"
vmtest_run intx "$w/vm.toml"
grep -E "^(KNOWN|RNG|IRQ)" "$w/intx.out" || true
vmtest_expect_rc 0
vmtest_expect_in intx.out "KNOWN: known-file-$nonce"
vmtest_expect_in intx.out "RNG-BYTES: 32"
grep -q "^IRQ: .*IO-APIC.*fasteoi.*virtio" "$w/intx.out" ||
	vmtest_fail "with pci=nomsi the virtio devices do not use IOAPIC (INTx) lines"
if grep -q "^IRQ: .*PCI-MSI" "$w/intx.out"; then vmtest_fail "MSI in use despite pci=nomsi"; fi
vmtest_pass
