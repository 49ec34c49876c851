"""The README's Python examples run as written, and its layout section names every package."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_python_example_in_the_readme_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        done = subprocess.run([sys.executable, "-c", block], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"README example failed:\n{block}\n{done.stderr[-2000:]}"


def test_the_layout_section_lists_every_package():
    layout = README[README.index("## Layout"):]
    layout = layout[:layout.index("\n## ", 4)]
    packages = sorted(str(init.parent.relative_to(REPO_ROOT)) + "/" for root in ("lrclr", "train", "tests")
                      for init in (REPO_ROOT / root).rglob("__init__.py"))
    packages += [f"{folder}/" for folder in ("pages", "pages/parts", "tests", "tests/support", "benchmarks")]
    missing = [p for p in packages if not re.search(rf"(^|\s){re.escape(p)}\s", layout, flags=re.M)]
    assert not missing, f"README layout section does not list {missing}"
