#!/usr/bin/env bash
# VM mobility, in one L1 boot: snapshot and restore, then live migration.
#
# Snapshot and restore. The guest counts once a second, printing the count with
# its uptime and writing it to sector COUNT of a virtio-blk disk; each tick it reads back the
# sector of the tick before. The test pauses it, snapshots it, stops that minivmm and restores
# the snapshot in a new process: the count continues where it stopped (no second boot), the
# first tick reads back the sector written before the snapshot, and the guest's uptime did not go
# backwards, and its virtio-net NIC (on a tap in L1) announces itself (GUEST_ANNOUNCE: the
# driver acknowledges on the control queue). The restored guest is snapshotted while running, and the first snapshot is
# restored a second time (--paused, then resumed). Then what a user can get wrong: a destination
# that is not empty, a truncated or corrupt state file, a newer format, a missing or short
# memory file (each one clear error and exit code 1, before any VM exists), and a description
# edited after the snapshot (refused before any vCPU runs).
#
# Live migration between two minivmm processes over a unix socket. The guest rewrites a 64 MiB
# tmpfs file every round and checksums it twice, two seconds apart; a round that straddles the
# migration starts on the source and ends on the destination. `ctl migrate` to an address
# nobody listens on, and to a destination that cannot take the guest (its API socket is taken),
# fails saying why, and the guest keeps running on the source. Then the migration proper: ctl
# returns, the source exits 0 naming where the guest went, the destination's guest goes on
# counting rounds (no second boot) with equal checksums, and powers off with exit code 0.
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

w=$vmtest_work
cat >"$w/count.sh" <<'GUEST'
ip link set eth0 up
ip addr add 169.254.101.2/24 dev eth0
i=0
while :; do
	i=$((i + 1))
	echo "count-$i" | dd of=/dev/vda bs=512 seek=$i conv=fsync 2>/dev/null
	prev=$(dd if=/dev/vda bs=512 skip=$((i - 1)) count=1 2>/dev/null | tr -d '\0')
	echo "COUNT $i uptime=$(cut -d' ' -f1 /proc/uptime) prev=${prev:-none}"
	sleep 1
done
GUEST
VMTEST_INITRAMFS=$w/initramfs
vmtest_guest_script "$w/count.sh" "$VMTEST_INITRAMFS"
truncate -s 1M "$w/disk.img"
tap=mvmob$$
tap=${tap:0:15}
ip tuntap add "$tap" mode tap || vmtest_fail "cannot create tap $tap"
ip addr add 169.254.101.1/24 dev "$tap"
ip link set "$tap" up
vmtest_config "$w/vm.toml" run "vcpus = 2"
printf '[[disk]]\npath = "%s"\n[rng]\n[[net]]\ntap = "%s"\n' "$w/disk.img" "$tap" >>"$w/vm.toml"

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	ip link del "$tap" 2>/dev/null || true
	rm -rf "$w"
}
trap cleanup EXIT
ctl() { "$MINIVMM_BIN" ctl --api_socket "$1" "${@:2}"; }
last_count() { grep -o "^COUNT [0-9]*" "$w/$1.out" | tail -n 1 | cut -d' ' -f2; }
# wait_count NAME N: waits up to 120 s for NAME's guest to print COUNT N or later.
wait_count() {
	for _ in $(seq 1 240); do
		[ "$(last_count "$1")" -ge "$2" ] 2>/dev/null && return 0
		sleep 0.5
	done
	cat "$w/$1.err"
	vmtest_fail "$1: the guest did not reach COUNT $2"
}
stop() {  # stop NAME PID: SIGTERM, expect exit code 143
	kill -TERM "$2"
	set +e
	wait "$2"
	vmtest_rc=$?
	set -e
	echo "--- $1: exit code $vmtest_rc; minivmm's log:"
	cat "$w/$1.err"
	vmtest_expect_rc 143
}
uptime_of() { grep "^COUNT $2 " "$w/$1.out" | head -n 1 | sed 's/.*uptime=\([0-9.]*\).*/\1/'; }
# check_continues NAME FROM: NAME's guest went on from COUNT FROM, without booting again.
check_continues() {
	local first
	first=$(grep -o "^COUNT [0-9]*" "$w/$1.out" | head -n 1 | cut -d' ' -f2)
	echo "$1: first count $first after COUNT $2 in the snapshot"
	[ "$first" -eq $(($2 + 1)) ] || vmtest_fail "$1: the count went on at $first, not $(($2 + 1))"
	grep -q MINIVMM-L2-INIT "$w/$1.out" && vmtest_fail "$1: the guest booted again"
	vmtest_expect_in "$1.out" "COUNT $first uptime="
	grep -qE "^COUNT $first .*prev=count-$2"$'\r?$' "$w/$1.out" ||
		vmtest_fail "$1: the first tick did not read back count-$2 from the disk: $(grep "^COUNT $first " "$w/$1.out")"
	awk -v a="$3" -v b="$(uptime_of "$1" "$first")" 'BEGIN { exit !(b + 0 >= a + 0) }' ||
		vmtest_fail "$1: uptime went backwards: $3 before the snapshot, $(uptime_of "$1" "$first") after"
}

# 1: boot, pause, snapshot the paused VM, stop it.
vmtest_start_until source "COUNT 3 " --config "$w/vm.toml" --api_socket "$w/source.sock"
pids+=("$vmtest_pid")
source_pid=$vmtest_pid
ctl "$w/source.sock" info | grep -qF '"blockers":[]' || vmtest_fail "info lists blockers for a VM without passthrough"
ctl "$w/source.sock" pause >/dev/null
snap_count=$(last_count source)
snap_uptime=$(uptime_of source "$snap_count")
ctl "$w/source.sock" snapshot "$w/snap1" | grep -qF '"state":"paused"' ||
	vmtest_fail "snapshot of a paused VM did not leave it paused"
vmtest_expect_in source.err "snapshot written to $w/snap1"
ls -ls "$w/snap1"
for f in config.toml state memory; do [ -s "$w/snap1/$f" ] || vmtest_fail "snap1/$f missing"; done
# Sparse: a 256 MiB guest that touched far less leaves holes.
allocated=$(($(stat -c %b "$w/snap1/memory") * $(stat -c %B "$w/snap1/memory")))
[ "$(stat -c %s "$w/snap1/memory")" -eq $((256 << 20)) ] || vmtest_fail "the memory file is not 256 MiB"
[ "$allocated" -lt $((200 << 20)) ] || vmtest_fail "the memory file is not sparse ($allocated bytes allocated)"
# A second snapshot into a folder that is not empty is refused, the VM untouched.
if ctl "$w/source.sock" snapshot "$w/snap1" 2>"$w/nonempty.err"; then vmtest_fail "snapshot into a non-empty folder succeeded"; fi
cat "$w/nonempty.err"
grep -qF "is not empty" "$w/nonempty.err" || vmtest_fail "non-empty destination: wrong message"
stop source "$source_pid"

# 2: restore in a new process; it goes on counting, then is snapshotted while it runs.
vmtest_start_until restored1 "COUNT $((snap_count + 2)) " --restore "$w/snap1" --api_socket "$w/r1.sock"
pids+=("$vmtest_pid")
r1_pid=$vmtest_pid
check_continues restored1 "$snap_count" "$snap_uptime"
vmtest_expect_in restored1.err "restored 'it-run'"
vmtest_expect_in restored1.err "asked the guest to announce where it now runs"
vmtest_expect_in restored1.err "the guest announced itself"
ctl "$w/r1.sock" snapshot "$w/snap2" | grep -qF '"state":"running"' ||
	vmtest_fail "snapshot of a running VM did not leave it running"
at=$(last_count restored1)
wait_count restored1 $((at + 2))
stop restored1 "$r1_pid"

# 3: the first snapshot again, paused until resumed: the same count continues.
"$MINIVMM_BIN" --restore "$w/snap1" --paused --api_socket "$w/r2.sock" </dev/null >"$w/restored2.out" 2>"$w/restored2.err" &
r2_pid=$!
pids+=("$r2_pid")
for _ in $(seq 1 120); do [ -S "$w/r2.sock" ] && break; sleep 0.5; done
ctl "$w/r2.sock" info | grep -qF '"state":"paused"' || vmtest_fail "--paused restore is not paused"
sleep 3
grep -q "^COUNT" "$w/restored2.out" && vmtest_fail "the --paused guest ran before resume"
ctl "$w/r2.sock" resume >/dev/null
wait_count restored2 $((snap_count + 2))
check_continues restored2 "$snap_count" "$snap_uptime"
stop restored2 "$r2_pid"

# 4: the snapshot taken while running restores too.
vmtest_start_until restored3 "COUNT" --restore "$w/snap2"
pids+=("$vmtest_pid")
grep -q MINIVMM-L2-INIT "$w/restored3.out" && vmtest_fail "restored3: the guest booted again"
stop restored3 "$vmtest_pid"

# 5: broken snapshots: one message each, exit code 1, no VM built.
refused() {  # refused NAME TEXT: restoring $w/NAME fails with TEXT
	set +e
	"$MINIVMM_BIN" --restore "$w/$1" </dev/null >"$w/$1.out" 2>"$w/$1.err"
	vmtest_rc=$?
	set -e
	echo "--- $1: exit code $vmtest_rc: $(cat "$w/$1.err")"
	vmtest_expect_rc 1
	vmtest_expect_in "$1.err" "$2"
	grep -q "restored\|booting" "$w/$1.err" && vmtest_fail "$1: a VM was built"
	return 0
}
variant() { cp -a --sparse=always "$w/snap1" "$w/$1"; }
variant truncated && truncate -s 30 "$w/truncated/state"
refused truncated "truncated"
variant corrupt && printf 'X' | dd of="$w/corrupt/state" bs=1 seek=40 conv=notrunc 2>/dev/null
refused corrupt "checksum"
variant newer && printf '\x63' | dd of="$w/newer/state" bs=1 seek=8 conv=notrunc 2>/dev/null
refused newer "newer minivmm"
variant nomemory && rm "$w/nomemory/memory"
refused nomemory "memory"
variant shortmemory && truncate -s 1M "$w/shortmemory/memory"
refused shortmemory "$((256 << 20)) bytes"
# A description edited after the snapshot no longer builds the machine the state describes.
variant edited && sed -i 's/^vcpus = 2$/vcpus = 1/' "$w/edited/config.toml"
grep -q '^vcpus = 1$' "$w/edited/config.toml" || vmtest_fail "config.toml has no 'vcpus = 2' line to edit"
refused edited "the state has 2 vCPUs, its description 1"

# --- Live migration ---
cat >"$w/dirty.sh" <<'GUEST'
mkdir -p /mig
mount -t tmpfs -o size=100m tmpfs /mig
head -c 1048576 /dev/urandom >/tmp/r1m
i=0
while [ $i -lt 12 ]; do
	i=$((i + 1))
	for j in $(seq 64); do echo "round $i block $j"; cat /tmp/r1m; done >/mig/data
	a=$(md5sum /mig/data)
	sleep 2
	b=$(md5sum /mig/data)
	echo "ROUND $i ${a%% *} ${b%% *} $(stat -c %s /mig/data)"
done
echo MIGRATION-GUEST-DONE
GUEST
VMTEST_INITRAMFS=$w/initramfs-dirty
vmtest_guest_script "$w/dirty.sh" "$VMTEST_INITRAMFS"
vmtest_config "$w/mig.toml" run "vcpus = 2"
printf '[rng]\n' >>"$w/mig.toml"
last_round() { grep -o "^ROUND [0-9]*" "$w/$1.out" | tail -n 1 | cut -d' ' -f2; }

vmtest_start_until msource "ROUND 1 " --config "$w/mig.toml" --api_socket "$w/ms.sock"
pids+=("$vmtest_pid")
msource_pid=$vmtest_pid
# Nobody listens: refused at once, the guest runs on.
if ctl "$w/ms.sock" migrate "unix:$w/nobody.sock" 2>"$w/nobody.err"; then vmtest_fail "migrate to nobody succeeded"; fi
cat "$w/nobody.err"
grep -qF "migration to unix:$w/nobody.sock failed" "$w/nobody.err" || vmtest_fail "migrate to nobody: wrong message"
grep -qF "the guest keeps running here" "$w/nobody.err" || vmtest_fail "migrate to nobody: the message does not say the guest runs on"
# A destination that cannot take the guest (its API socket is in use) says so, and gives up.
"$MINIVMM_BIN" --incoming "unix:$w/mig1.sock" --api_socket "$w/ms.sock" </dev/null >"$w/mdest1.out" 2>"$w/mdest1.err" &
mdest1_pid=$!
pids+=("$mdest1_pid")
for _ in $(seq 1 60); do [ -S "$w/mig1.sock" ] && break; sleep 0.5; done
if ctl "$w/ms.sock" migrate "unix:$w/mig1.sock" 2>"$w/refused.err"; then vmtest_fail "migrate to a broken destination succeeded"; fi
cat "$w/refused.err"
grep -qF "is in use by another process" "$w/refused.err" || vmtest_fail "the destination's reason did not reach ctl"
set +e
wait "$mdest1_pid"
vmtest_rc=$?
set -e
echo "--- mdest1: exit code $vmtest_rc: $(cat "$w/mdest1.err")"
vmtest_expect_rc 1
ctl "$w/ms.sock" info | grep -qF '"state":"running"' || vmtest_fail "the source is not running after the failed migrations"
at=$(last_round msource)
for _ in $(seq 1 120); do [ "$(last_round msource)" -gt "$at" ] && break; sleep 0.5; done
[ "$(last_round msource)" -gt "$at" ] || vmtest_fail "the source's guest stopped after the failed migrations"

# The migration proper.
"$MINIVMM_BIN" --incoming "unix:$w/mig2.sock" --api_socket "$w/md.sock" </dev/null >"$w/mdest.out" 2>"$w/mdest.err" &
mdest_pid=$!
pids+=("$mdest_pid")
for _ in $(seq 1 60); do [ -S "$w/mig2.sock" ] && break; sleep 0.5; done
ctl "$w/ms.sock" migrate "unix:$w/mig2.sock" >"$w/migrate.json" || { cat "$w/msource.err" "$w/mdest.err"; vmtest_fail "migrate failed"; }
set +e
wait "$msource_pid"
vmtest_rc=$?
set -e
echo "--- msource: exit code $vmtest_rc; minivmm's log:"
cat "$w/msource.err"
vmtest_expect_rc 0
vmtest_expect_in msource.err "guest migrated to unix:$w/mig2.sock"
source_last=$(last_round msource)
set +e
timeout 300 tail --pid="$mdest_pid" -f /dev/null
wait "$mdest_pid"
vmtest_rc=$?
set -e
echo "--- mdest: exit code $vmtest_rc; minivmm's log:"
cat "$w/mdest.err"
echo "--- mdest: guest console (last 40 lines):"
tail -n 40 "$w/mdest.out"
vmtest_expect_rc 0
vmtest_expect_in mdest.out "MIGRATION-GUEST-DONE"
vmtest_expect_in mdest.err "migrated guest 'it-run' runs here"
grep -q MINIVMM-L2-INIT "$w/mdest.out" && vmtest_fail "the destination booted the guest again"
first=$(grep -o "^ROUND [0-9]*" "$w/mdest.out" | head -n 1 | cut -d' ' -f2)
[ "$first" -eq $((source_last + 1)) ] || vmtest_fail "the destination's first round is $first, the source's last $source_last"
# Every round's two checksums of its 64 MiB file agree, on both sides (the straddling round
# included), and each is a real MD5.
grep -h "^ROUND" "$w/msource.out" "$w/mdest.out" | tr -d '\r' >"$w/rounds"
# (mawk has no {n} intervals: the length is checked apart.)
awk 'NF != 5 || length($3) != 32 || $3 !~ /^[0-9a-f]+$/ || $3 != $4 || $5 < 67108864 {
		print "bad round: " $0; bad = 1 }
	END { exit bad }' "$w/rounds" || vmtest_fail "a round's checksums differ or are missing: memory changed under the guest"
vmtest_pass
