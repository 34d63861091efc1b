#!/usr/bin/env python3
"""Runs Clang's -Wthread-safety analysis over the product sources.

The project builds with g++, which accepts ABSL_GUARDED_BY and friends but checks nothing. This
script replays each product compile command from BUILD_DIR/compile_commands.json with clang++ and
-fsyntax-only, so a member read without its mutex fails the test suite. It first compiles a planted
violation and requires clang to reject it, so a silently disabled analysis cannot pass.

Usage: check_thread_safety.py BUILD_DIR
"""

import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

# Flags that only matter for producing objects and dependency files; each takes an argument
# except -MD.
DROP_WITH_ARG = {"-o", "-MQ", "-MF", "-MT"}
DROP_ALONE = {"-MD", "-MMD", "-c"}
ADDED = ["-fsyntax-only", "-fno-color-diagnostics", "-Wno-unknown-warning-option",
         "-Wthread-safety", "-Werror=thread-safety"]

PLANTED = """
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
class Planted {
 public:
  int Read() const { return value_; }  // Reads value_ without holding mutex_.
 private:
  mutable absl::Mutex mutex_;
  int value_ ABSL_GUARDED_BY(mutex_) = 0;
};
int UsePlanted() { return Planted().Read(); }
"""


def find_clang():
    """Prefers clang++-14 (the version the project is checked with), else any clang++."""
    for name in ("clang++-14", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("check_thread_safety: neither clang++-14 nor clang++ is installed")


def source_root(build_dir):
    """Reads the source root from meson's introspection data, to tell product sources from tests."""
    try:
        with open(os.path.join(build_dir, "meson-info", "meson-info.json"), encoding="utf-8") as f:
            return os.path.realpath(json.load(f)["directories"]["source"])
    except (OSError, KeyError, ValueError):
        return None


def is_test_source(path, src_root, build_dir):
    """True for a source under tests/ in the source tree (or generated under tests/ in the build)."""
    for root in filter(None, (src_root, os.path.realpath(build_dir))):
        rel = os.path.relpath(path, root)
        if not rel.startswith(".."):
            return rel.split(os.sep)[0] == "tests"
    return False


def display_name(entry, src_root):
    """Names a source relative to the source root (generated ones relative to the build dir)."""
    path = os.path.realpath(os.path.join(entry["directory"], entry["file"]))
    if src_root and not os.path.relpath(path, src_root).startswith(".."):
        return os.path.relpath(path, src_root)
    return os.path.normpath(entry["file"])


def clang_args(entry, clang):
    """Turns one g++ compile command into a clang++ syntax-only thread-safety check; returns the
    argument list (never a shell string, so -DMINIVMM_VERSION="0.1.0" keeps its quotes)."""
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    if os.path.basename(args[0]) in ("ccache", "sccache"):
        args = args[1:]
    out, skip = [clang], False
    for arg in args[1:]:
        if skip:
            skip = False
        elif arg in DROP_WITH_ARG:
            skip = True
        elif arg not in DROP_ALONE and not arg.startswith("-fdiagnostics-color"):
            out.append(arg)
    return out + ADDED


def run(args, directory):
    """Runs one check; returns (exit code, combined output)."""
    result = subprocess.run(args, cwd=directory, capture_output=True, text=True, check=False)
    return result.returncode, result.stdout + result.stderr


def self_check(entry, clang):
    """Compiles PLANTED with the first entry's flags and fails the whole run unless clang reports
    the thread-safety violation: otherwise a passing run would prove nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        snippet = os.path.join(tmp, "planted_violation.cc")
        with open(snippet, "w", encoding="utf-8") as f:
            f.write(PLANTED)
        args = [snippet if a == entry["file"] else a for a in clang_args(entry, clang)]
        if snippet not in args:
            args.append(snippet)
        code, output = run(args, entry["directory"])
    if code == 0 or "thread-safety" not in output:
        print(output)
        sys.exit("check_thread_safety: clang did not report a planted thread-safety violation; "
                 "the check is not working")


def main(argv):
    if len(argv) != 2:
        print("usage: check_thread_safety.py BUILD_DIR", file=sys.stderr)
        return 2
    build_dir = argv[1]
    with open(os.path.join(build_dir, "compile_commands.json"), encoding="utf-8") as f:
        entries = json.load(f)
    src_root = source_root(build_dir)
    product = [e for e in entries if not is_test_source(
        os.path.realpath(os.path.join(e["directory"], e["file"])), src_root, build_dir)]
    if not product:
        sys.exit("check_thread_safety: no product sources in compile_commands.json")
    clang = find_clang()
    self_check(product[0], clang)

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(lambda e: (e, *run(clang_args(e, clang), e["directory"])),
                                product))
    failed = sorted((display_name(e, src_root), output) for e, code, output in results if code)
    for name, output in failed:
        print(f"=== {name}\n{output}")
    print(f"check_thread_safety: {len(product)} files, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
