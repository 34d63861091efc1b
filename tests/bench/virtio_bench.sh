#!/usr/bin/env bash
# virtio benchmark (prints a table; not a test). In one KVM environment -- the nested L1 guest
# where this machine has no usable KVM -- it boots minivmm's L2 test guest once per phase, with
# the same VM every time (1 vCPU, 256 MiB, one read-only virtio-blk disk of DISK_MIB on L1's
# tmpfs, plus a virtio-net tap when minivmm supports [[net]]), and the guest's /test.sh
# (virtio_bench_guest.sh) does:
#   baseline  no I/O: its vCPU exit counts are subtracted from the other phases'
#   blkseq    dd if=/dev/vda of=/dev/null bs=1M iflag=direct over the whole disk, SEQ_PASSES
#             times -> MB/s
#   blkrand   randread (randread.c, built here with gcc -O2 -static): 4 KiB O_DIRECT preads at
#             random aligned offsets, queue depth 1, for RAND_SECONDS -> IOPS
#   net       busybox nc over TCP, L2 -> L1 and L1 -> L2, NET_MIB each way -> MB/s; only when
#             `minivmm --config` accepts [[net]] tap = "NAME" (else the rows say n/a). L1
#             creates the tap (169.254.100.1/24); the guest sets eth0 to 169.254.100.2/24.
# Throughput is timed inside L2 (/proc/uptime, 10 ms resolution; randread uses
# CLOCK_MONOTONIC). Exits to userspace come from minivmm's "vCPU exits: io=N mmio=N ..." log
# line at the end of each boot; a phase's row shows its boot's counts minus the baseline's.
# The guest prints the same number of console bytes in every phase, since each UART byte is
# an exit.
#
# Usage: tests/bench/virtio_bench.sh
# Environment: MINIVMM_BIN (default build/minivmm), MINIVMM_BENCH_DISK_MIB (256),
#   MINIVMM_BENCH_SEQ_PASSES (4), MINIVMM_BENCH_RAND_SECONDS (10), MINIVMM_BENCH_NET_MIB (64),
#   MINIVMM_TEST_TIMEOUT (seconds for the whole nested run, default 1800).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
bench_dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$bench_dir/../.." && pwd)
: "${MINIVMM_BIN:=$root/build/minivmm}"
: "${MINIVMM_BENCH_DISK_MIB:=256}"
: "${MINIVMM_BENCH_SEQ_PASSES:=4}"
: "${MINIVMM_BENCH_RAND_SECONDS:=10}"
: "${MINIVMM_BENCH_NET_MIB:=64}"
: "${MINIVMM_TEST_TIMEOUT:=1800}"
export MINIVMM_BIN MINIVMM_BENCH_DISK_MIB MINIVMM_BENCH_SEQ_PASSES MINIVMM_BENCH_RAND_SECONDS \
	MINIVMM_BENCH_NET_MIB \
	MINIVMM_TEST_TIMEOUT

bench_die() {
	echo "virtio_bench: error: $*" >&2
	exit 1
}

for v in MINIVMM_BENCH_DISK_MIB MINIVMM_BENCH_SEQ_PASSES MINIVMM_BENCH_RAND_SECONDS MINIVMM_BENCH_NET_MIB; do
	case ${!v} in '' | *[!0-9]* | 0) bench_die "$v must be a positive whole number, got '${!v}'" ;; esac
done
# L1 has 2 GiB of RAM and the image lives in its tmpfs next to the 256 MiB guest.
[ "$MINIVMM_BENCH_DISK_MIB" -le 512 ] || bench_die "MINIVMM_BENCH_DISK_MIB is at most 512"

# --- Step 1, wherever it is started: build the guest tool into a temporary folder, then run the
# rest as a child (which re-runs itself in L1 where needed) so the folder can be removed after.
if [ -z "${MINIVMM_BENCH_TOOLS:-}" ]; then
	[ -x "$MINIVMM_BIN" ] ||
		bench_die "minivmm binary $MINIVMM_BIN is missing or not executable: build it first (scripts/build.sh), or set MINIVMM_BIN"
	command -v gcc >/dev/null || bench_die "gcc not found (apt-get install gcc)"
	command -v cpio >/dev/null || bench_die "cpio not found (apt-get install cpio)"
	bench_started=$(date +%s)
	# Under /tmp: L1 sees the host's /tmp entries that exist when it starts (read-only).
	MINIVMM_BENCH_TOOLS=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-bench-tools.XXXXXX")
	export MINIVMM_BENCH_TOOLS
	trap 'rm -rf "$MINIVMM_BENCH_TOOLS"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP
	timeout 120 gcc -O2 -static -Wall -Wextra -o "$MINIVMM_BENCH_TOOLS/randread" "$bench_dir/randread.c" ||
		bench_die "building randread.c with gcc -O2 -static failed (static libc: apt-get install libc6-dev)"
	MINIVMM_BENCH_HOST="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) CPUs, Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
	export MINIVMM_BENCH_HOST
	rc=0
	"$0" "$@" || rc=$?
	echo "virtio_bench: finished in $(($(date +%s) - bench_started)) s (exit code $rc)"
	exit "$rc"
fi

# --- Step 2: get next to a working /dev/kvm (re-runs this script in L1 where needed).
# shellcheck source=../integration/lib/vm-test.sh
. "$root/tests/integration/lib/vm-test.sh"
vmtest_enter_kvm "$@"

# --- Step 3: the benchmark, next to /dev/kvm.
# shellcheck disable=SC2154 # vmtest_work: set by vmtest_enter_kvm
w=$vmtest_work
[ -x "$MINIVMM_BENCH_TOOLS/randread" ] || bench_die "no $MINIVMM_BENCH_TOOLS/randread in this environment"
tap=mvbench0
l1_ip=169.254.100.1
l2_ip=169.254.100.2
tx_port=5001
rx_port=5002
tap_created=
listener_pids=()
cleanup() {
	local pid
	for pid in "${listener_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	pkill -f "busybox nc -l -p" 2>/dev/null || true
	[ -z "$tap_created" ] || ip link del "$tap" 2>/dev/null || true
	rm -rf "$w"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

say() { echo "virtio_bench: $*"; }
now() { date +%s.%N; }
# elapsed START: seconds since START (from now()), one decimal.
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

t_all=$(now)
# Boots read the kernel from tmpfs, not the 9p share; the kernel cache lives there as well
# (L1's home is read-only), so after the first boot minivmm boots the cached vmlinux.
export XDG_CACHE_HOME=$w/cache
cp "$MINIVMM_GUEST_KERNEL" "$w/vmlinuz"
say "writing a ${MINIVMM_BENCH_DISK_MIB} MiB disk image on tmpfs"
timeout 300 dd if=/dev/zero of="$w/disk.img" bs=1M count="$MINIVMM_BENCH_DISK_MIB" status=none ||
	bench_die "cannot write the disk image $w/disk.img"

# Does minivmm know [[net]]? It parses the whole file before it opens any file, so a config
# whose kernel does not exist boots nothing and the error names what it rejects.
net_reason=
cat >"$w/netprobe.toml" <<TOML
[vm]
memory_mib = 64
[boot]
kernel = "$w/no-such-kernel"
[[net]]
tap = "$tap"
TOML
probe_rc=0
probe_err=$(timeout 30 "$MINIVMM_BIN" --config "$w/netprobe.toml" </dev/null 2>&1 >/dev/null) || probe_rc=$?
if grep -qiE "unknown[^']*'net'" <<<"$probe_err"; then
	net_reason="n/a: no [[net]] support"
elif grep -qiE "unknown[^']*'tap'" <<<"$probe_err"; then
	net_reason="n/a: [[net]] has no tap key"
fi
say "[[net]] probe: exit $probe_rc: $(head -n 1 <<<"$probe_err")"

setup_tap() {
	command -v ip >/dev/null || { echo "no ip command"; return 1; }
	command -v busybox >/dev/null || { echo "no busybox for nc"; return 1; }
	modprobe tun 2>/dev/null || true
	ip link del "$tap" 2>/dev/null || true
	ip tuntap add "$tap" mode tap 2>&1 || return 1
	tap_created=1
	ip addr add "$l1_ip/24" dev "$tap" 2>&1 && ip link set "$tap" up 2>&1
}
if [ -z "$net_reason" ]; then
	if setup_tap >"$w/tap.log" 2>&1; then
		say "tap $tap is up with $l1_ip/24"
	else
		net_reason="n/a: cannot create tap $tap: $(head -n 1 "$w/tap.log")"
	fi
fi
with_net=
[ -n "$net_reason" ] || with_net=1

# make_phase PHASE: $w/PHASE.toml booting the test initramfs + /test.sh + /randread.
make_phase() {
	local phase=$1 stage=$w/stage-$1
	mkdir -p "$stage"
	{
		printf 'PHASE=%s DISK_MIB=%s SEQ_PASSES=%s RAND_SECONDS=%s NET_MIB=%s\n' "$phase" \
			"$MINIVMM_BENCH_DISK_MIB" "$MINIVMM_BENCH_SEQ_PASSES" "$MINIVMM_BENCH_RAND_SECONDS" \
			"$MINIVMM_BENCH_NET_MIB"
		printf 'L1_IP=%s L2_IP=%s TX_PORT=%s RX_PORT=%s\n' "$l1_ip" "$l2_ip" "$tx_port" "$rx_port"
		cat "$bench_dir/virtio_bench_guest.sh"
	} >"$stage/test.sh"
	cp "$MINIVMM_BENCH_TOOLS/randread" "$stage/randread"
	chmod 0755 "$stage/randread"
	cp "$MINIVMM_GUEST_INITRAMFS" "$w/$phase.initramfs"
	# A second (uncompressed) archive after the first: Linux unpacks both, in order. It takes
	# a cpio header only at a 4-byte aligned offset and skips zero bytes, so pad to that first
	# (a compressed archive's length is whatever it is).
	local size
	size=$(stat -c %s "$w/$phase.initramfs")
	head -c $(((4 - size % 4) % 4)) /dev/zero >>"$w/$phase.initramfs"
	(cd "$stage" && printf 'test.sh\nrandread\n' | cpio --quiet -o -H newc -R 0:0) >>"$w/$phase.initramfs"
	VMTEST_KERNEL=$w/vmlinuz VMTEST_INITRAMFS=$w/$phase.initramfs \
		vmtest_config "$w/$phase.toml" run "vcpus = 1"
	cat >>"$w/$phase.toml" <<TOML
[[disk]]
path = "$w/disk.img"
read_only = true
serial = "bench-disk"
TOML
	if [ -n "$with_net" ]; then
		printf '[[net]]\ntap = "%s"\n' "$tap" >>"$w/$phase.toml"
	fi
}

# run_phase PHASE: boots it; sets run_rc, run_io, run_mmio, run_exits, run_secs and
# fills $w/PHASE.bench with the guest's BENCH lines (without the prefix).
run_phase() {
	local phase=$1 t0
	make_phase "$phase"
	say "phase $phase: booting minivmm (limit 420 s)"
	t0=$(now)
	run_rc=0
	timeout -k 5 420 "$MINIVMM_BIN" --config "$w/$phase.toml" \
		</dev/null >"$w/$phase.out" 2>"$w/$phase.err" || run_rc=$?
	run_secs=$(elapsed "$t0")
	run_exits=$(sed -n 's/.*vCPU exits: \([^;]*\).*/\1/p' "$w/$phase.err" | tail -n 1)
	run_io=$(sed -n 's/.*\bio=\([0-9]*\).*/\1/p' <<<"$run_exits")
	run_mmio=$(sed -n 's/.*\bmmio=\([0-9]*\).*/\1/p' <<<"$run_exits")
	tr -d '\r' <"$w/$phase.out" | sed -n 's/^BENCH \(.*[^ ]\) *$/\1/p' >"$w/$phase.bench"
	say "phase $phase: exit code $run_rc after $run_secs s; vCPU exits: ${run_exits:-not logged}"
	if [ "$run_rc" != 0 ] || [ ! -s "$w/$phase.bench" ] || grep -q '^BENCH-LOG' "$w/$phase.out"; then
		say "phase $phase: minivmm's log:"
		sed 's/^/  /' "$w/$phase.err"
		say "phase $phase: guest console (last 30 lines):"
		tr -d '\r' <"$w/$phase.out" | tail -n 30 | sed 's/^/  /'
	fi
}

# field NAME KEY: KEY's value in the guest's result line that starts with NAME.
field() {
	awk -v n="$1" -v k="$2" '$1 == n { for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit } }' \
		"$w/$phase.bench"
}

# Table rows: metric|value|unit|exits.
rows=()
details=()
failures=0
base_io=
base_mmio=
add_row() { rows+=("${1//|//}|${2//|//}|${3//|//}|${4//|//}"); }
# exits_cell: this boot's io/mmio, less the baseline's when there is one.
exits_cell() {
	if [ -z "$run_io" ] || [ -z "$run_mmio" ]; then
		echo "not logged"
	elif [ -n "$base_io" ]; then
		printf '%+d / %+d vs baseline' $((run_io - base_io)) $((run_mmio - base_mmio))
	else
		echo "$run_io / $run_mmio (no baseline)"
	fi
}
# rate NAME: MB/s (10^6 bytes) from NAME's bytes, t0, t1; empty when they are unusable.
rate() {
	local b t0 t1
	b=$(field "$1" bytes)
	t0=$(field "$1" t0)
	t1=$(field "$1" t1)
	[ -n "$b" ] && [ -n "$t0" ] && [ -n "$t1" ] || return 0
	awk -v b="$b" -v a="$t0" -v z="$t1" 'BEGIN { if (z > a && b > 0) printf "%.1f", b / 1e6 / (z - a) }'
}
secs() { awk -v a="$(field "$1" t0)" -v z="$(field "$1" t1)" 'BEGIN { printf "%.2f", z - a }'; }

# -- baseline
phase=baseline
run_phase baseline
baseline_ok() { [ "$run_rc" = 0 ] && grep -q '^baseline ok' "$w/baseline.bench"; }
if [ -n "$with_net" ] && ! baseline_ok; then
	# Try the same VM without the tap: if that boots, [[net]] is what broke it.
	first_err=$(grep -m1 -iE 'error|fail|cannot' "$w/baseline.err" || tail -n 1 "$w/baseline.err")
	with_net=
	say "the baseline VM with [[net]] failed; once more without it"
	run_phase baseline
	if baseline_ok; then
		net_reason="error: a VM with [[net]] tap = \"$tap\" failed: ${first_err:-no message}"
	else
		net_reason="not run: the baseline VM fails with and without [[net]]"
	fi
	say "net: $net_reason"
fi
if baseline_ok && [ -n "$run_io" ]; then
	base_io=$run_io
	base_mmio=$run_mmio
	add_row "baseline boot, no I/O (subtracted below)" "-" "-" "$run_io / $run_mmio (whole boot)"
else
	failures=$((failures + 1))
	add_row "baseline boot, no I/O" "error: exit $run_rc" "-" "${run_io:-?} / ${run_mmio:-?}"
fi
details+=("baseline: minivmm ran $run_secs s; vCPU exits: ${run_exits:-?}")

# -- sequential read
phase=blkseq
run_phase blkseq
metric="virtio-blk seq read, dd bs=1M iflag=direct, ${MINIVMM_BENCH_SEQ_PASSES} x ${MINIVMM_BENCH_DISK_MIB} MiB"
v=$(rate blkseq)
if [ "$run_rc" = 0 ] && [ "$(field blkseq rc)" = 0 ] && [ -n "$v" ]; then
	add_row "$metric" "$v" "MB/s" "$(exits_cell)"
	details+=("blkseq: $(field blkseq bytes) bytes ($(field blkseq passes) passes) in $(secs blkseq) s (guest clock); minivmm ran $run_secs s; vCPU exits: $run_exits")
else
	failures=$((failures + 1))
	add_row "$metric" "error: exit $run_rc, dd rc=$(field blkseq rc)" "MB/s" "$(exits_cell)"
	details+=("blkseq: failed; minivmm ran $run_secs s; vCPU exits: ${run_exits:-?}")
fi

# -- random read
phase=blkrand
run_phase blkrand
metric="virtio-blk rand read 4 KiB, O_DIRECT, QD1, ${MINIVMM_BENCH_RAND_SECONDS} s"
v=$(field blkrand iops)
if [ "$run_rc" = 0 ] && [ "$(field blkrand rc)" = 0 ] && [ -n "$v" ]; then
	add_row "$metric" "$(printf '%.0f' "$v")" "IOPS" "$(exits_cell)"
	details+=("blkrand: $(field blkrand ops) reads in $(field blkrand seconds) s, mean latency $(field blkrand avg_us) us; minivmm ran $run_secs s; vCPU exits: $run_exits")
else
	failures=$((failures + 1))
	add_row "$metric" "error: exit $run_rc, randread rc=$(field blkrand rc)" "IOPS" "$(exits_cell)"
	details+=("blkrand: failed; minivmm ran $run_secs s; vCPU exits: ${run_exits:-?}")
fi

# -- network
tx_metric="virtio-net TCP L2 -> L1, busybox nc, ${MINIVMM_BENCH_NET_MIB} MiB"
rx_metric="virtio-net TCP L1 -> L2, busybox nc, ${MINIVMM_BENCH_NET_MIB} MiB"
if [ -n "$with_net" ]; then
	count=$((MINIVMM_BENCH_NET_MIB * 16))
	hold=$w/hold
	mkfifo "$hold"
	# L2 -> L1: read until the guest closes; stdin held open (busybox nc half-closes on its EOF).
	# (Pipelines, not process substitution: L1's chroot has no /dev/fd.)
	(timeout 600 busybox nc -l -p "$tx_port" 0<>"$hold" | wc -c >"$w/nettx.bytes") &
	listener_pids+=($!)
	# L1 -> L2: send COUNT blocks of 64 KiB to the first client, then half-close.
	(dd if=/dev/zero bs=64k count="$count" 2>/dev/null |
		timeout 600 busybox nc -l -p "$rx_port" >/dev/null) &
	listener_pids+=($!)
	phase=net
	run_phase net
	sleep 1
	for pid in "${listener_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	pkill -f "busybox nc -l -p" 2>/dev/null || true
	listener_pids=()
	exits=$(exits_cell)
	l1_got=$(tr -dc 0-9 <"$w/nettx.bytes" 2>/dev/null || true)
	v=$(rate nettx)
	if [ "$run_rc" = 0 ] && [ "$(field nettx rc)" = 0 ] && [ -n "$v" ] &&
		[ "${l1_got:-0}" = "$(field nettx bytes)" ]; then
		add_row "$tx_metric" "$v" "MB/s" "$exits (both directions)"
	else
		failures=$((failures + 1))
		add_row "$tx_metric" "error: exit $run_rc, nc rc=$(field nettx rc), L1 got ${l1_got:-?} bytes" "MB/s" "$exits"
	fi
	v=$(rate netrx)
	if [ "$run_rc" = 0 ] && [ "$(field netrx rc)" = 0 ] && [ -n "$v" ] &&
		[ "$(field netrx bytes)" = $((count * 65536)) ]; then
		add_row "$rx_metric" "$v" "MB/s" "(same boot as above)"
	else
		failures=$((failures + 1))
		add_row "$rx_metric" "error: exit $run_rc, nc rc=$(field netrx rc), L2 got $(field netrx bytes) bytes" "MB/s" "(same boot as above)"
	fi
	details+=("net: L2->L1 $(field nettx bytes) bytes in $(secs nettx) s (L1 received ${l1_got:-?}), L1->L2 $(field netrx bytes) bytes in $(secs netrx) s; minivmm ran $run_secs s; vCPU exits: ${run_exits:-?}")
else
	add_row "$tx_metric" "$net_reason" "MB/s" "-"
	add_row "$rx_metric" "$net_reason" "MB/s" "-"
	details+=("net: not run ($net_reason)")
	case $net_reason in n/a:*) ;; *) failures=$((failures + 1)) ;; esac
fi

# -- report
if [ -n "${MINIVMM_L1:-}" ]; then
	env_line="nested: L0 = QEMU TCG, single-threaded software CPU emulation (host: ${MINIVMM_BENCH_HOST:-?}) -> L1 = Linux $(uname -r), 1 vCPU, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), kvm-amd on nested SVM -> L2 = minivmm guest, 1 vCPU, 256 MiB. Every L2 instruction is emulated by TCG, so absolute numbers are orders of magnitude below real KVM; compare runs on the same setup only."
else
	env_line="direct KVM on ${MINIVMM_BENCH_HOST:-$(uname -r)}; L2 = minivmm guest, 1 vCPU, 256 MiB."
fi
echo
echo "## minivmm virtio benchmark ($(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "Environment: $env_line Disk image: ${MINIVMM_BENCH_DISK_MIB} MiB raw file on tmpfs, read-only. Throughput timed in the guest."
echo
echo "| metric | value | unit | userspace exits (io / mmio) |"
echo "|---|---|---|---|"
for r in "${rows[@]}"; do
	IFS='|' read -r m v u e <<<"$r"
	echo "| $m | $v | $u | $e |"
done
echo
echo "Exits: minivmm's vCPU exits to userspace for the phase's whole boot minus the baseline boot's (same VM, same console output), i.e. the exits the I/O itself caused. MB = 10^6 bytes."
for d in "${details[@]}"; do echo "- $d"; done
echo
say "benchmark took $(elapsed "$t_all") s in this environment; $failures failed measurement(s)"
[ "$failures" = 0 ]
