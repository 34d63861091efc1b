#!/usr/bin/env python3
"""Checks that every project #include follows the layer rules.

Each layer folder's meson.build states, in one comment line
    # may include: vmm/base, vmm/core
which other layer folders its sources may include. This script reads those rules, checks every
.h/.cc under the source folders and the unit tests that mirror them, and checks that README.md's
Layout table states the same rules, so the documentation cannot drift from what is enforced.

Usage: check_includes.py ROOT
"""

import os
import re
import sys

SOURCE_TOPS = ("vmm", "devices", "passthrough", "guest-firmware")
PROJECT_TOPS = SOURCE_TOPS + ("tests",)
UNIT = "tests/unit"
TESTING = "tests/unit/testing"
TESTING_MAY_INCLUDE = ("vmm/base", "vmm/core")

RULE_RE = re.compile(r"^#\s*may include:\s*(.*)$")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
BACKTICKED_RE = re.compile(r"`([^`]+)`")


def walk(root, top):
    """Yields (relative dir, file names) under ROOT/top, sorted, skipping build* dirs so that an
    in-tree build folder's generated files are not mistaken for sources."""
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("build"))
        yield os.path.relpath(dirpath, root).replace(os.sep, "/"), sorted(filenames)


def read_rules(root):
    """Maps each layer folder to the sorted tuple of folders it may include, read from the
    '# may include:' line of its meson.build; a '(...)' value (std/Abseil only) means none."""
    rules = {}
    for top in SOURCE_TOPS:
        for rel, files in walk(root, top):
            if "meson.build" not in files:
                continue
            with open(os.path.join(root, rel, "meson.build"), encoding="utf-8") as f:
                for line in f:
                    m = RULE_RE.match(line.strip())
                    if m:
                        value = m.group(1).strip()
                        names = [] if value.startswith("(") else value.split(",")
                        rules[rel] = tuple(sorted(n.strip().strip("/") for n in names if n.strip()))
                        break
    return rules


def layer_of(folder, rules):
    """Returns the longest rule folder that is a path-component prefix of FOLDER, or None; the
    component match keeps devices/virtio from owning a sibling such as devices/virtio2."""
    best = None
    for layer in rules:
        if (folder == layer or folder.startswith(layer + "/")) and (
                best is None or len(layer) > len(best)):
            best = layer
    return best


def allowed_for(rel_dir, rules):
    """Returns (layer, allowed targets, rule text, rule file) for a file in REL_DIR, or None when
    the file is not checked. A unit test under tests/unit/<P>/ gets the rule of P's layer plus the
    fixtures of the folders it may use, so a test cannot lean on a layer its code may not use."""
    if rel_dir == TESTING or rel_dir.startswith(TESTING + "/"):
        return (TESTING, {TESTING, *TESTING_MAY_INCLUDE}, ", ".join(TESTING_MAY_INCLUDE),
                "tests/static/check_includes.py")
    unit = rel_dir.startswith(UNIT + "/")
    if not unit and rel_dir.split("/")[0] == "tests":
        return None
    layer = layer_of(rel_dir[len(UNIT) + 1:] if unit else rel_dir, rules)
    if layer is None:
        return None
    allowed = {layer, *rules[layer]}
    if unit:
        allowed |= {UNIT + "/" + a for a in allowed} | {TESTING}
    text = ", ".join(rules[layer]) or "no project folder"
    return layer, allowed, text, layer + "/meson.build"


def target_of(include, rules):
    """Returns the layer (or tests/unit/<layer>, tests/unit/testing) an include path belongs to."""
    folder = os.path.dirname(include)
    if folder == TESTING or folder.startswith(TESTING + "/"):
        return TESTING
    if folder.startswith(UNIT + "/"):
        layer = layer_of(folder[len(UNIT) + 1:], rules)
        return UNIT + "/" + layer if layer else folder
    return layer_of(folder, rules) or folder


def check_files(root, rules, errors):
    """Checks the includes of every source and unit-test file; returns (files, includes) counts."""
    n_files = n_includes = 0
    missing = set()
    for top in SOURCE_TOPS + (UNIT,):
        for rel, names in walk(root, top):
            for name in (n for n in names if n.endswith((".h", ".cc"))):
                path = rel + "/" + name
                if top != UNIT and layer_of(rel, rules) is None:
                    if rel not in missing:
                        missing.add(rel)
                        errors.append(f"{rel}: has no '# may include:' line in its meson.build")
                    continue
                spec = allowed_for(rel, rules)
                if spec is None:
                    continue
                layer, allowed, rule_text, rule_file = spec
                n_files += 1
                with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE_RE.match(line)
                        if not m or m.group(1).split("/")[0] not in PROJECT_TOPS:
                            continue
                        n_includes += 1
                        target = target_of(m.group(1), rules)
                        if target not in allowed:
                            errors.append(
                                f'{path}:{lineno}: includes "{m.group(1)}" (layer {target}), but '
                                f"{path}'s layer {layer} may include only: {rule_text} "
                                f"(rule in {rule_file})")
    return n_files, n_includes


def check_readme(root, rules, errors):
    """Compares README.md's Layout table's 'may include' column with the meson.build rules, so the
    folder map that people read says what the checker enforces."""
    try:
        with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    column, rows = None, {}
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if "|" in line else []
        if column is None:
            lowered = [c.lower() for c in cells]
            if "may include" in lowered:
                column = lowered.index("may include")
            continue
        if not cells:
            if rows:
                break
            continue
        m = BACKTICKED_RE.fullmatch(cells[0])
        if m and column < len(cells):
            # A backticked name is a folder when it ends in '/' or names a layer; anything else
            # in the cell (prose, "nothing", "only std") adds no folder.
            rows[m.group(1).strip("/")] = tuple(sorted(
                f.strip("/") for f in BACKTICKED_RE.findall(cells[column])
                if f.endswith("/") or f in rules))
    if column is None:
        errors.append("README.md: no Layout table with a 'may include' column")
        return
    for layer in sorted(rules):
        if layer not in rows:
            errors.append(f"README.md: the Layout table has no row for `{layer}/`")
        elif rows[layer] != rules[layer]:
            errors.append(
                f"README.md: `{layer}/` may include [{', '.join(rows[layer])}] in the Layout "
                f"table, but [{', '.join(rules[layer])}] in {layer}/meson.build")


def main(argv):
    if len(argv) != 2:
        print("usage: check_includes.py ROOT", file=sys.stderr)
        return 2
    root = argv[1]
    rules = read_rules(root)
    errors = []
    n_files, n_includes = check_files(root, rules, errors)
    check_readme(root, rules, errors)
    for e in errors:
        print(e)
    print(f"check_includes: {n_files} files, {n_includes} includes checked, "
          f"{len(errors)} violations")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
