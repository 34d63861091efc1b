#!/usr/bin/env bash
# Installs what minivmm needs, builds it twice (plain, and with ASan+UBSan), runs every unit
# and integration test on the plain build and the unit tests again under the sanitizers, and
# ends with one summary line. Integration tests boot real guests: directly where this machine
# runs KVM guests, else inside the nested-KVM harness.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
scripts/build.sh build
# The sanitizer build runs only the unit tests, so it builds only them, unoptimised (a quarter
# of the compile time of -O2 under ASan).
MINIVMM_BUILD_TARGETS=unit-tests \
  scripts/build.sh build-asan -Db_sanitize=address,undefined -Dbuildtype=debug

status=0
meson test -C build --print-errorlogs || status=1
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --no-rebuild --suite unit --print-errorlogs || status=1

# One closing line over both runs, counted from meson's JSON test logs.
python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    for line in open(path):
        result = json.loads(line)["result"]
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
