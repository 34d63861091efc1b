#!/usr/bin/env python3
"""Tests check_includes.py on small throwaway trees, so that a checker which passes everything (or
fails everything) is caught: each case plants one kind of violation and expects it reported."""

import os
import subprocess
import sys
import tempfile
import unittest

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_includes.py")

# A tiny repo: vmm/base at the bottom, devices/pci above it, vmm (the assembly) on top.
RULES = {
    "vmm/base": "(std, Abseil and Linux headers only)",
    "devices/pci": "vmm/base",
    "vmm": "vmm/base, devices/pci",
}
README_ROWS = {
    "vmm/base": "nothing",
    "devices/pci": "`vmm/base/`",
    "vmm": "`vmm/base/`, `devices/pci/`",
}
SOURCES = {
    "vmm/base/log.h": '#include <string>\n#include "absl/status/status.h"\n',
    "vmm/base/log.cc": '#include "vmm/base/log.h"\n',
    "devices/pci/msix.h": '#include "vmm/base/log.h"\n',
    "devices/pci/msix.cc": '#include "devices/pci/msix.h"\n#include "vmm/base/log.h"\n',
    "vmm/vm.cc": '#include "devices/pci/msix.h"\n#include "vmm/base/log.h"\n',
    "tests/unit/devices/pci/msix_test.cc":
        '#include "gtest/gtest.h"\n#include "devices/pci/msix.h"\n'
        '#include "tests/unit/devices/pci/pci_fixture.h"\n'
        '#include "tests/unit/testing/fake_irq_line.h"\n',
    "tests/unit/devices/pci/pci_fixture.h": '#include "vmm/base/log.h"\n',
    "tests/unit/testing/fake_irq_line.h": '#include "vmm/base/log.h"\n',
    # Not checked: fuzz targets may include anything.
    "tests/fuzz/vm_fuzzer.cc": '#include "vmm/vm.cc"\n',
}


class CheckIncludesTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.root = self._tmp.name
        for folder, rule in RULES.items():
            self.write(f"{folder}/meson.build", f"# The {folder} layer.\n# may include: {rule}\n")
        self.write("devices/meson.build", "subdir('pci')\n")
        for path, text in SOURCES.items():
            self.write(path, text)
        self.write_readme(README_ROWS)

    def tearDown(self):
        self._tmp.cleanup()

    def write(self, path, text):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)

    def write_readme(self, rows):
        lines = ["# fake", "", "## Layout", "", "| folder | what | may include |", "|---|---|---|"]
        lines += [f"| `{folder}/` | things | {cell} |" for folder, cell in rows.items()]
        lines += ["| `tests/unit/` | unit tests | |", "", "## Next", ""]
        self.write("README.md", "\n".join(lines))

    def run_checker(self):
        result = subprocess.run([sys.executable, CHECKER, self.root], capture_output=True,
                                text=True, check=False)
        return result.returncode, result.stdout + result.stderr

    def assert_fails_with(self, *fragments):
        code, out = self.run_checker()
        self.assertEqual(code, 1, out)
        for fragment in fragments:
            self.assertIn(fragment, out)
        self.assertIn("1 violations", out)

    def test_clean_tree_passes(self):
        code, out = self.run_checker()
        self.assertEqual(code, 0, out)
        self.assertIn("check_includes: 8 files, 11 includes checked, 0 violations", out)

    def test_lower_layer_including_upper_fails(self):
        self.write("devices/pci/msix.cc", '#include "devices/pci/msix.h"\n\n#include "vmm/vm.h"\n')
        self.assert_fails_with(
            'devices/pci/msix.cc:3: includes "vmm/vm.h" (layer vmm), but devices/pci/msix.cc\'s '
            "layer devices/pci may include only: vmm/base (rule in devices/pci/meson.build)")

    def test_unit_test_including_forbidden_layer_fails(self):
        self.write("tests/unit/vmm/base/log_test.cc",
                   '#include "vmm/base/log.h"\n#include "devices/pci/msix.h"\n')
        self.assert_fails_with(
            'tests/unit/vmm/base/log_test.cc:2: includes "devices/pci/msix.h" (layer devices/pci)',
            "layer vmm/base may include only: no project folder (rule in vmm/base/meson.build)")

    def test_unit_test_including_fixture_of_forbidden_folder_fails(self):
        self.write("tests/unit/vmm/base/log_test.cc",
                   '#include "tests/unit/devices/pci/pci_fixture.h"\n')
        self.assert_fails_with('tests/unit/vmm/base/log_test.cc:1: includes '
                               '"tests/unit/devices/pci/pci_fixture.h"')

    def test_testing_fakes_may_not_include_upper_layers(self):
        self.write("tests/unit/testing/fake_irq_line.h", '#include "devices/pci/msix.h"\n')
        self.assert_fails_with('tests/unit/testing/fake_irq_line.h:1: includes '
                               '"devices/pci/msix.h"', "may include only: vmm/base, vmm/core")

    def test_readme_cell_disagreeing_with_rule_fails(self):
        self.write_readme({**README_ROWS, "devices/pci": "`vmm/base/`, `vmm/`"})
        self.assert_fails_with("`devices/pci/` may include [vmm, vmm/base] in the Layout table, "
                               "but [vmm/base] in devices/pci/meson.build")

    def test_readme_missing_row_fails(self):
        self.write_readme({k: v for k, v in README_ROWS.items() if k != "vmm"})
        self.assert_fails_with("the Layout table has no row for `vmm/`")

    def test_readme_without_column_fails(self):
        self.write("README.md", "| folder | what |\n|---|---|\n| `vmm/` | stuff |\n")
        self.assert_fails_with("README.md: no Layout table with a 'may include' column")

    def test_source_folder_without_rule_fails(self):
        self.write("devices/legacy/i8042.cc", '#include "vmm/base/log.h"\n')
        self.write("devices/legacy/meson.build", "# no rule here\n")
        self.assert_fails_with("devices/legacy: has no '# may include:' line in its meson.build")

    def test_longest_prefix_wins(self):
        # devices/pci/quirks/ is its own layer; its rule is narrower than devices/pci's.
        self.write("devices/pci/quirks/meson.build",
                   "# may include: (std, Abseil and Linux headers only)\n")
        self.write_readme({**README_ROWS, "devices/pci/quirks": "only std"})
        self.write("devices/pci/quirks/q.cc", '#include "vmm/base/log.h"\n')
        self.assert_fails_with('devices/pci/quirks/q.cc:1: includes "vmm/base/log.h" '
                               "(layer vmm/base), but devices/pci/quirks/q.cc's layer "
                               "devices/pci/quirks may include only: no project folder")


if __name__ == "__main__":
    unittest.main(verbosity=2)
