#!/usr/bin/env bash
# VM mobility benchmark (prints a table; not a test). In one KVM environment -- the nested L1
# guest where this machine has no usable KVM -- it runs, for each guest size in SIZES (MiB of
# guest memory, 1 vCPU: L1 has one CPU), the same guest under minivmm and under Debian's QEMU
# (qemu-system-x86_64 -M pc -accel kvm -cpu host, same kernel, initramfs and command line),
# and measures for each VMM:
#   snapshot s            wall time of taking a snapshot of the running guest into a file on
#                         L1's tmpfs: `minivmm ctl snapshot DIR` (the ctl process included);
#                         QEMU: QMP `migrate` to "exec:cat > FILE" (QEMU 7.2 has no "file:")
#                         until its MIGRATION event says completed, then `cont`
#   restore-to-running s  from launching `minivmm --restore DIR` / `qemu ... -incoming
#                         "exec:cat FILE"` to the guest's first console line after it
#   migration total s     `minivmm ctl migrate unix:PATH` wall time (it answers once the guest
#                         runs on the destination); QEMU: QMP `migrate unix:PATH` until the
#                         MIGRATION event says completed
#   migration downtime ms the largest gap between consecutive console lines of the guest, in
#                         host time, from just before the migration starts to after the
#                         destination's first line (source and destination output merged)
# The guest prints "TICK N UPTIME" every TICK_MS. Its own clock cannot measure downtime (both
# VMMs restore kvmclock, so guest time stands still while the guest does), so every console
# line is timestamped on arrival in L1 by one long-lived perl process per VMM process, on the
# same clock (CLOCK_REALTIME) as the launch and ctl/QMP timings. Order per size and VMM: boot,
# snapshot (the guest runs on), live-migrate that guest to a second process, stop it, restore
# the snapshot in a third process. QEMU migrates with downtime-limit 300 ms (its default, and
# minivmm's) and max-bandwidth unlimited (as libvirt sets it; QEMU's own default caps it at
# 32 MiB/s, minivmm has no cap). QEMU's times are taken in the QMP client, from sending the
# command (its process start is not counted); minivmm's `ctl` start is, and is shown below
# the table. A step that fails makes its cell "n/a: WHY" and the table is still printed.
#
# Usage: tests/bench/mobility_bench.sh
# Environment: MINIVMM_BIN (default build/minivmm), MINIVMM_BENCH_SIZES ("256 1024"),
#   MINIVMM_BENCH_TICK_MS (50), MINIVMM_L1_MEM_MB (L1's memory, default here 4096: a source and
#   a destination of the largest guest live in it at once, plus the snapshots on its tmpfs),
#   MINIVMM_TEST_TIMEOUT (seconds for the whole nested run, default 2400).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
bench_dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$bench_dir/../.." && pwd)
: "${MINIVMM_BIN:=$root/build/minivmm}"
: "${MINIVMM_BENCH_SIZES:=256 1024}"
: "${MINIVMM_BENCH_TICK_MS:=50}"
: "${MINIVMM_L1_MEM_MB:=4096}"
: "${MINIVMM_TEST_TIMEOUT:=2400}"
export MINIVMM_BIN MINIVMM_BENCH_SIZES MINIVMM_BENCH_TICK_MS MINIVMM_L1_MEM_MB MINIVMM_TEST_TIMEOUT

bench_die() {
	echo "mobility_bench: error: $*" >&2
	exit 1
}

case $MINIVMM_BENCH_TICK_MS in '' | *[!0-9]* | 0) bench_die "MINIVMM_BENCH_TICK_MS must be a positive whole number" ;; esac
for s in $MINIVMM_BENCH_SIZES; do
	case $s in '' | *[!0-9]*) bench_die "MINIVMM_BENCH_SIZES: '$s' is not a whole number of MiB" ;; esac
	[ "$s" -ge 64 ] || bench_die "MINIVMM_BENCH_SIZES: $s MiB is too small for the guest"
done

# --- Step 1, on the host: check the tools, then run the rest as a child so the total time can
# be printed after it (the child re-runs itself in L1 where needed).
if [ -z "${MINIVMM_L1:-}" ] && [ -z "${MINIVMM_BENCH_HOST:-}" ]; then
	[ -x "$MINIVMM_BIN" ] ||
		bench_die "minivmm binary $MINIVMM_BIN is missing or not executable: build it first (scripts/build.sh), or set MINIVMM_BIN"
	command -v qemu-system-x86_64 >/dev/null || bench_die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
	command -v perl >/dev/null || bench_die "perl not found"
	[ -x /usr/bin/python3 ] || command -v python3 >/dev/null || bench_die "python3 not found (the QMP client)"
	bench_started=$(date +%s)
	MINIVMM_BENCH_HOST="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) CPUs, Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
	export MINIVMM_BENCH_HOST
	rc=0
	"$0" "$@" || rc=$?
	echo "mobility_bench: finished in $(($(date +%s) - bench_started)) s (exit code $rc)"
	exit "$rc"
fi

# --- Step 2: get next to a working /dev/kvm (re-runs this script in L1 where needed).
# shellcheck source=../integration/lib/vm-test.sh
. "$root/tests/integration/lib/vm-test.sh"
vmtest_enter_kvm "$@"

# --- Step 3: the benchmark, next to /dev/kvm.
# shellcheck disable=SC2154 # vmtest_work: set by vmtest_enter_kvm
w=$vmtest_work
# Only processes this script started: each VMM (its `timeout` wrapper) and timestamper.
pids=()
cleanup() {
	local pid
	# Still ours: a pid whose process ended may have been reused, so only children of this shell.
	for pid in "${pids[@]}"; do
		[ "$(cut -d' ' -f4 "/proc/$pid/stat" 2>/dev/null)" = "$$" ] && kill -KILL "$pid" 2>/dev/null
	done
	rm -rf "$w"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

say() { echo "mobility_bench: $*"; }
# Bash's own clock reading: no fork, and the same clock as perl's and python's time().
now() { echo "$EPOCHREALTIME"; }
# diff_s A B [SCALE]: (B - A) * SCALE, printed with 3 decimals (SCALE 1000: ms, no decimals).
diff_s() { awk -v a="$1" -v b="$2" -v k="${3:-1}" 'BEGIN { printf(k == 1 ? "%.3f" : "%.0f", (b - a) * k) }'; }
is_num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }

# Debian's python3, not a shim of some per-user installation that L1's chroot may not run.
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
tick_ms=$MINIVMM_BENCH_TICK_MS

# Every VMM reads the same copies, from tmpfs, so no one pays for the 9p share; minivmm's
# kernel cache lives there as well (L1's home is read-only).
export XDG_CACHE_HOME=$w/cache
cp "$MINIVMM_GUEST_KERNEL" "$w/vmlinuz"
# The guest: one numbered line every tick_ms with its uptime. No fork per line (read is a
# shell builtin), so the lines come steadily even under nested emulation.
cat >"$w/tick.sh" <<GUEST
i=0
while :; do
	i=\$((i + 1))
	read -r up _ </proc/uptime
	echo "TICK \$i \$up"
	usleep $((tick_ms * 1000))
done
GUEST
VMTEST_INITRAMFS=$w/initramfs
vmtest_guest_script "$w/tick.sh" "$VMTEST_INITRAMFS"
cmdline="console=ttyS0 quiet panic=-1 minivmm.test=run"

# The timestamper: one process per VMM process, reading its console through a FIFO (L1's
# chroot has no /dev/fd for process substitution); "SECONDS.MICROS LINE" per line.
cat >"$w/stamp.pl" <<'PERL'
use strict;
use warnings;
use Time::HiRes qw(time);
$| = 1;
while (my $line = <STDIN>) {
	$line =~ s/\r?\n\z//;
	$line =~ s/\r//g;
	printf "%.6f %s\n", time, $line;
}
PERL

# The QMP client: qmp.py SOCKET snapshot|migrate URI. Sets migration parameters, then times
# from sending `migrate` to the MIGRATION event "completed" (plus `cont` for a snapshot, after
# which the guest runs on as minivmm's does), and prints one line of key=value.
cat >"$w/qmp.py" <<'PY'
import json, socket, sys, time

sock_path, op, uri = sys.argv[1:4]
deadline = time.time() + 600
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(600)
s.connect(sock_path)
f = s.makefile("rw")
events = []

def read():
    line = f.readline()
    if not line or time.time() > deadline:
        raise SystemExit("status=error reason=QMP-connection-lost-or-timed-out")
    return json.loads(line)

def cmd(name, **args):
    f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
    f.flush()
    while True:
        msg = read()
        if "event" in msg:
            events.append(msg)
        elif "error" in msg:
            raise SystemExit("status=error reason=%s:%s" % (name, msg["error"].get("desc", "?").replace(" ", "-")))
        elif "return" in msg:
            return msg["return"]

read()  # the greeting
cmd("qmp_capabilities")
cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
# 100 GiB/s: unlimited in practice (QEMU 7.2's default is 32 MiB/s).
cmd("migrate-set-parameters", **{"downtime-limit": 300, "max-bandwidth": 100 << 30})
t0 = time.time()
cmd("migrate", uri=uri)
status = None
while status not in ("completed", "failed", "cancelled"):
    while not events:
        events.append(read())
    ev = events.pop(0)
    if ev.get("event") == "MIGRATION":
        status = ev["data"]["status"]
t1 = time.time()
# QEMU fills in total-time and downtime just after it sends the event: ask until they are there.
for _ in range(100):
    info = cmd("query-migrate")
    if info.get("total-time", 0) > 0 or status != "completed":
        break
    time.sleep(0.02)
if op == "snapshot" and status == "completed":
    cmd("cont")
    t1 = time.time()
ram = info.get("ram", {})
print("status=%s secs=%.3f qemu_downtime_ms=%s qemu_total_ms=%s transferred_mib=%.1f" % (
    status, t1 - t0, info.get("downtime", "?"), info.get("total-time", "?"),
    ram.get("transferred", 0) / 1048576.0))
PY

# launch NAME CMD...: starts CMD (bounded by timeout) with its console through the timestamper
# into $w/NAME.out and stderr in NAME.err; sets launch_pid (the timeout wrapper, which passes a
# SIGTERM on to CMD) and launch_t0 (just before the fork).
launch() {
	local name=$1
	shift
	rm -f "$w/$name.fifo"
	mkfifo "$w/$name.fifo"
	perl "$w/stamp.pl" <"$w/$name.fifo" >"$w/$name.out" &
	pids+=($!)
	launch_t0=$(now)
	timeout -k 5 1200 "$@" </dev/null >"$w/$name.fifo" 2>"$w/$name.err" &
	launch_pid=$!
	pids+=("$launch_pid")
}

# ticks NAME: host timestamps of NAME's tick lines. A line that ends like a TICK line counts
# too: a snapshot or migration can cut a line, whose rest the next process prints.
ticks() {
	awk '{ c = $0; sub(/^[^ ]* /, "", c) } c ~ /[0-9]+ [0-9]+\.[0-9]+$/ { print $1 }' "$w/$1.out" 2>/dev/null
}
tick_count() { ticks "$1" | wc -l; }

# wait_ticks NAME PID N LIMIT_S: waits until NAME has printed N tick lines; fails when its
# process ends or LIMIT_S pass. Polls slowly: the poller shares L1's one CPU with the guest.
wait_ticks() {
	local name=$1 pid=$2 n=$3 end=$(($(date +%s) + $4))
	while [ "$(date +%s)" -lt "$end" ]; do
		[ "$(tick_count "$name")" -ge "$n" ] && return 0
		kill -0 "$pid" 2>/dev/null || { sleep 0.5; [ "$(tick_count "$name")" -ge "$n" ]; return; }
		sleep 0.25
	done
	return 1
}

wait_socket() {  # wait_socket PATH LIMIT_S
	local end=$(($(date +%s) + $2))
	while [ "$(date +%s)" -lt "$end" ]; do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# stop PID: SIGTERM to a launched VMM, SIGKILL after 15 s; reaps it.
stop() {
	kill -TERM "$1" 2>/dev/null || true
	for _ in $(seq 1 60); do kill -0 "$1" 2>/dev/null || break; sleep 0.25; done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# why NAME TEXT: "TEXT" plus NAME's last log line, for an n/a cell (no '|', it splits cells).
why() {
	local last
	last=$(grep -v '^\s*$' "$w/$1.err" 2>/dev/null | tail -n 1 | cut -c1-160)
	echo "$2${last:+ ($last)}" | tr '|' '/'
}

# show NAME: NAME's log and console tail, for the run's record when a step failed.
show() {
	say "--- $1: log:"
	sed 's/^/  /' "$w/$1.err" 2>/dev/null || true
	say "--- $1: console (last 10 lines):"
	tail -n 10 "$w/$1.out" 2>/dev/null | sed 's/^/  /' || true
}

# downtime SRC DST T0: sets down_ms (largest gap between consecutive ticks, SRC's from the last
# one before T0 on, merged with DST's first 20) and switch_ms (SRC's last tick to DST's first),
# and period_ms (SRC's median tick gap before T0: the guest's normal pace).
downtime() {
	local src=$1 dst=$2 t0=$3
	# (A here-string, not < <(...): L1's chroot has no /dev/fd.)
	read -r down_ms switch_ms period_ms <<<"$(
		{
			ticks "$src" | awk -v t0="$t0" '{ print $1, "s" }'
			ticks "$dst" | head -n 20 | awk '{ print $1, "d" }'
		} | sort -n | awk -v t0="$t0" '
			$1 < t0 { if (pt != "") g[++n] = $1 - pt; pt = $1; before = $1; next }
			{
				if (prev == "") prev = before
				if (prev != "" && $1 - prev > max) max = $1 - prev
				if ($2 == "s") lasts = $1
				if ($2 == "d" && firstd == "") firstd = $1
				prev = $1
			}
			END {
				if (lasts == "") lasts = before
				# median of the gaps before the migration
				for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (g[j] < g[i]) { x = g[i]; g[i] = g[j]; g[j] = x }
				med = n ? g[int((n + 1) / 2)] : 0
				if (firstd == "" || lasts == "") print "x x x"
				else printf "%.0f %.0f %.0f\n", max * 1000, (firstd - lasts) * 1000, med * 1000
			}'
	)"
}

# Results: res[SIZE,VMM,METRIC] = number, or "n/a: WHY". Metrics: snap restore migtotal down.
declare -A res
details=()

# ---- minivmm ----
bench_minivmm() {
	local size=$1 p t0 t1 rc src_pid dst_pid r_pid snapdir
	p=m$size snapdir=$w/msnap-$size
	VMTEST_KERNEL=$w/vmlinuz vmtest_config "$w/$p.toml" run "vcpus = 1"
	sed -i "s/^memory_mib = .*/memory_mib = $size/" "$w/$p.toml"

	say "minivmm $size MiB: booting the source"
	launch "$p-src" "$MINIVMM_BIN" --config "$w/$p.toml" --api_socket "$w/$p-src.sock"
	src_pid=$launch_pid
	if ! wait_ticks "$p-src" "$src_pid" 10 600; then
		show "$p-src"
		local r
		r=$(why "$p-src" "n/a: the guest did not tick within 600 s of boot")
		res[$size,minivmm,snap]=$r res[$size,minivmm,restore]=$r res[$size,minivmm,migtotal]=$r res[$size,minivmm,down]=$r
		stop "$src_pid"
		return
	fi
	details+=("minivmm $size MiB: first tick $(diff_s "$launch_t0" "$(ticks "$p-src" | head -n 1)") s after launch (boot)")

	# Snapshot of the running guest; it runs on.
	t0=$(now)
	rc=0
	timeout 600 "$MINIVMM_BIN" ctl --api_socket "$w/$p-src.sock" snapshot "$snapdir" >"$w/$p-snap.json" 2>"$w/$p-snap.err" || rc=$?
	t1=$(now)
	if [ "$rc" = 0 ]; then
		res[$size,minivmm,snap]=$(diff_s "$t0" "$t1")
		details+=("minivmm $size MiB snapshot: $(grep -o 'snapshot written to .*' "$w/$p-src.err" | tail -n 1); memory file $(du -m --apparent-size "$snapdir/memory" | cut -f1) MiB, $(du -m "$snapdir/memory" | cut -f1) MiB allocated")
	else
		res[$size,minivmm,snap]=$(why "$p-snap" "n/a: ctl snapshot exit $rc")
		show "$p-src"
	fi
	sleep 2

	# Live migration of the same guest to a second process.
	say "minivmm $size MiB: migrating"
	launch "$p-dst" "$MINIVMM_BIN" --incoming "unix:$w/$p-mig.sock" --api_socket "$w/$p-dst.sock"
	dst_pid=$launch_pid
	if ! wait_socket "$w/$p-mig.sock" 120; then
		res[$size,minivmm,migtotal]=$(why "$p-dst" "n/a: the destination did not listen within 120 s")
		res[$size,minivmm,down]=${res[$size,minivmm,migtotal]}
		show "$p-dst"
		stop "$dst_pid"
		stop "$src_pid"
	else
		t0=$(now)
		rc=0
		timeout 900 "$MINIVMM_BIN" ctl --api_socket "$w/$p-src.sock" migrate "unix:$w/$p-mig.sock" >"$w/$p-mig.json" 2>"$w/$p-mig.err" || rc=$?
		t1=$(now)
		if [ "$rc" = 0 ] && wait_ticks "$p-dst" "$dst_pid" 5 120; then
			res[$size,minivmm,migtotal]=$(diff_s "$t0" "$t1")
			downtime "$p-src" "$p-dst" "$t0"
			if is_num "$down_ms"; then
				res[$size,minivmm,down]=$down_ms
				details+=("minivmm $size MiB migration: $(grep -o 'migration: .*' "$w/$p-src.err" | tail -n 1); source's last tick to destination's first: $switch_ms ms; normal tick gap $period_ms ms, so the guest stood still about $((down_ms - period_ms)) ms longer than usual")
			else
				res[$size,minivmm,down]="n/a: no ticks on one side to measure between"
			fi
		else
			res[$size,minivmm,migtotal]=$(why "$p-mig" "n/a: ctl migrate exit $rc, or the destination did not tick")
			res[$size,minivmm,down]=${res[$size,minivmm,migtotal]}
			show "$p-src"
			show "$p-dst"
		fi
		stop "$src_pid"  # normally gone already: it exits 0 once the guest runs elsewhere
		stop "$dst_pid"
	fi

	# Restore the snapshot in a third process.
	if is_num "${res[$size,minivmm,snap]}"; then
		say "minivmm $size MiB: restoring"
		launch "$p-res" "$MINIVMM_BIN" --restore "$snapdir" --api_socket "$w/$p-res.sock"
		r_pid=$launch_pid
		if wait_ticks "$p-res" "$r_pid" 1 300; then
			res[$size,minivmm,restore]=$(diff_s "$launch_t0" "$(ticks "$p-res" | head -n 1)")
			details+=("minivmm $size MiB restore: $(grep -o "restored '.*" "$w/$p-res.err" | head -n 1)")
		else
			res[$size,minivmm,restore]=$(why "$p-res" "n/a: no console line within 300 s of --restore")
			show "$p-res"
		fi
		stop "$r_pid"
	else
		res[$size,minivmm,restore]="n/a: no snapshot to restore"
	fi
	rm -rf "$snapdir"
}

# ---- QEMU ----
bench_qemu() {
	local size=$1 p rc out src_pid dst_pid r_pid snapfile
	p=q$size snapfile=$w/qsnap-$size
	# -M pc without default devices: the guest has a serial port and nothing it does not use.
	local qemu=(qemu-system-x86_64 -M pc -accel kvm -cpu host -smp 1 -m "$size"
		-nodefaults -no-user-config -display none -serial stdio
		-kernel "$w/vmlinuz" -initrd "$w/initramfs" -append "$cmdline")

	say "QEMU $size MiB: booting the source"
	launch "$p-src" "${qemu[@]}" -qmp "unix:$w/$p-src.qmp,server=on,wait=off"
	src_pid=$launch_pid
	if ! wait_ticks "$p-src" "$src_pid" 10 600; then
		show "$p-src"
		local r
		r=$(why "$p-src" "n/a: the guest did not tick within 600 s of boot")
		res[$size,qemu,snap]=$r res[$size,qemu,restore]=$r res[$size,qemu,migtotal]=$r res[$size,qemu,down]=$r
		stop "$src_pid"
		return
	fi
	details+=("QEMU $size MiB: first tick $(diff_s "$launch_t0" "$(ticks "$p-src" | head -n 1)") s after launch (boot)")

	# Snapshot: migrate to a file while the guest runs (so the file says "running" and a
	# restore starts the guest by itself, as minivmm's does), then cont.
	rc=0
	out=$(timeout 700 "$py" "$w/qmp.py" "$w/$p-src.qmp" snapshot "exec:cat > $snapfile" 2>"$w/$p-snap.err") || rc=$?
	echo "$out" >"$w/$p-snap.res"
	if [ "$rc" = 0 ] && [[ $out == status=completed* ]]; then
		res[$size,qemu,snap]=$(sed -n 's/.* secs=\([0-9.]*\).*/\1/p' <<<"$out")
		details+=("QEMU $size MiB snapshot: $out; file $(du -m --apparent-size "$snapfile" | cut -f1) MiB")
	else
		res[$size,qemu,snap]=$(why "$p-snap" "n/a: QMP snapshot exit $rc: $out")
		show "$p-src"
	fi
	sleep 2

	# Live migration of the same guest to a second QEMU.
	say "QEMU $size MiB: migrating"
	launch "$p-dst" "${qemu[@]}" -qmp "unix:$w/$p-dst.qmp,server=on,wait=off" -incoming "unix:$w/$p-mig.sock"
	dst_pid=$launch_pid
	if ! wait_socket "$w/$p-mig.sock" 120; then
		res[$size,qemu,migtotal]=$(why "$p-dst" "n/a: the destination did not listen within 120 s")
		res[$size,qemu,down]=${res[$size,qemu,migtotal]}
		show "$p-dst"
	else
		local t0
		t0=$(now)
		rc=0
		out=$(timeout 900 "$py" "$w/qmp.py" "$w/$p-src.qmp" migrate "unix:$w/$p-mig.sock" 2>"$w/$p-mig.err") || rc=$?
		if [ "$rc" = 0 ] && [[ $out == status=completed* ]] && wait_ticks "$p-dst" "$dst_pid" 5 120; then
			res[$size,qemu,migtotal]=$(sed -n 's/.* secs=\([0-9.]*\).*/\1/p' <<<"$out")
			downtime "$p-src" "$p-dst" "$t0"
			if is_num "$down_ms"; then
				res[$size,qemu,down]=$down_ms
				details+=("QEMU $size MiB migration: $out; source's last tick to destination's first: $switch_ms ms; normal tick gap $period_ms ms, so the guest stood still about $((down_ms - period_ms)) ms longer than usual")
			else
				res[$size,qemu,down]="n/a: no ticks on one side to measure between"
			fi
		else
			res[$size,qemu,migtotal]=$(why "$p-mig" "n/a: QMP migrate exit $rc: $out, or the destination did not tick")
			res[$size,qemu,down]=${res[$size,qemu,migtotal]}
			show "$p-src"
			show "$p-dst"
		fi
	fi
	stop "$src_pid"
	stop "$dst_pid"

	# Restore: a new QEMU loads the file and runs the guest.
	if is_num "${res[$size,qemu,snap]}"; then
		say "QEMU $size MiB: restoring"
		launch "$p-res" "${qemu[@]}" -incoming "exec:cat $snapfile"
		r_pid=$launch_pid
		if wait_ticks "$p-res" "$r_pid" 1 300; then
			res[$size,qemu,restore]=$(diff_s "$launch_t0" "$(ticks "$p-res" | head -n 1)")
		else
			res[$size,qemu,restore]=$(why "$p-res" "n/a: no console line within 300 s of -incoming")
			show "$p-res"
		fi
		stop "$r_pid"
	else
		res[$size,qemu,restore]="n/a: no snapshot to restore"
	fi
	rm -f "$snapfile"
}

t_all=$(now)
# What starting `ctl` alone costs here (it is inside minivmm's snapshot and migration times):
# a request to nobody, once to load the binary into the page cache, then timed.
timeout 60 "$MINIVMM_BIN" ctl --api_socket "$w/nobody.sock" info >/dev/null 2>&1 || true
t0=$(now)
timeout 60 "$MINIVMM_BIN" ctl --api_socket "$w/nobody.sock" info >/dev/null 2>&1 || true
ctl_ms=$(diff_s "$t0" "$(now)" 1000)

for size in $MINIVMM_BENCH_SIZES; do
	bench_minivmm "$size"
	bench_qemu "$size"
done

# ---- report ----
# ratio A B: A / B with 2 decimals, or "-" when either is not a number.
ratio() {
	if is_num "$1" && is_num "$2" && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
		awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
	else
		echo "-"
	fi
}
if [ -n "${MINIVMM_L1:-}" ]; then
	env_line="nested: L0 = QEMU TCG, single-threaded software CPU emulation (host: ${MINIVMM_BENCH_HOST:-?}) -> L1 = Linux $(uname -r), 1 vCPU, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), kvm-amd on nested SVM -> L2 = the guest, 1 vCPU. Every L2 instruction is emulated by TCG, so absolute numbers are far from real KVM; compare the two VMMs, and runs on the same setup only."
else
	env_line="direct KVM on ${MINIVMM_BENCH_HOST:-$(uname -r)}; the guest has 1 vCPU."
fi
echo
echo "## minivmm mobility benchmark ($(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "Environment: $env_line minivmm: $MINIVMM_BIN. QEMU: $(qemu-system-x86_64 --version | head -n 1), -M pc -accel kvm -cpu host. Guest: Debian kernel + busybox initramfs printing a line every $tick_ms ms; snapshots on L1's tmpfs."
echo
echo "| guest | metric | minivmm | QEMU | minivmm/QEMU |"
echo "|---|---|---|---|---|"
metric_names=(snap "snapshot s" restore "restore-to-running s" migtotal "migration total s" down "migration downtime ms")
for size in $MINIVMM_BENCH_SIZES; do
	if [ "$size" -ge 1024 ] && [ $((size % 1024)) = 0 ]; then label="$((size / 1024)) GiB"; else label="$size MiB"; fi
	for ((i = 0; i < ${#metric_names[@]}; i += 2)); do
		m=${metric_names[i]}
		a=${res[$size,minivmm,$m]:-n/a: not run}
		b=${res[$size,qemu,$m]:-n/a: not run}
		echo "| $label | ${metric_names[i + 1]} | $a | $b | $(ratio "$a" "$b") |"
	done
done
echo
echo "Targets:"
failures=0
for size in $MINIVMM_BENCH_SIZES; do
	a=${res[$size,minivmm,restore]:-}
	b=${res[$size,qemu,restore]:-}
	r=$(ratio "$a" "$b")
	if [ "$r" = - ]; then
		verdict="not measured"
	elif awk -v r="$a" -v q="$b" 'BEGIN { exit !(r <= 0.5 * q) }'; then verdict="met"; else verdict="NOT met"; fi
	echo "- $size MiB: restore-to-running <= 0.5 x QEMU's load-from-file: minivmm ${a%%:*} s vs 0.5 x ${b%%:*} s (ratio $r): $verdict"
	a=${res[$size,minivmm,down]:-}
	b=${res[$size,qemu,down]:-}
	r=$(ratio "$a" "$b")
	if [ "$r" = - ]; then
		verdict="not measured"
	elif awk -v m="$a" -v q="$b" 'BEGIN { exit !(m <= q) }'; then verdict="met"; else verdict="NOT met"; fi
	echo "- $size MiB: migration downtime <= QEMU's (downtime-limit 300 ms): minivmm ${a%%:*} ms vs ${b%%:*} ms (ratio $r): $verdict"
done
echo
echo "Notes: a ratio below 1 favours minivmm. Starting \`minivmm ctl\` alone takes $ctl_ms ms here; it is inside minivmm's snapshot and migration times, while QEMU's are timed from the QMP command. QEMU's migration ends when its source says completed; minivmm's ctl answers once the guest runs on the destination. Downtime is the raw largest gap between console lines, so it includes one normal tick gap (asked for: $tick_ms ms; measured per VMM below, as the guest's own pace under each differs)."
for d in "${details[@]}"; do echo "- $d"; done
for size in $MINIVMM_BENCH_SIZES; do
	for v in minivmm qemu; do
		for m in snap restore migtotal down; do
			is_num "${res[$size,$v,$m]:-x}" || failures=$((failures + 1))
		done
	done
done
echo
say "benchmark took $(diff_s "$t_all" "$(now)") s in this environment; $failures measurement(s) n/a"
[ "$failures" = 0 ]
