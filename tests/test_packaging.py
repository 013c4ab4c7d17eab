"""`pip install .` (not -e) must ship every file the packages read: the embedded dataset, the C++ sources that
are compiled on first use, the published numbers the reports compare against. Found when an installed wheel's
`python -m registry report` failed with "no published-numbers folder"."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("simclr_core", "registry", "experiments", "reports")


def tracked_package_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--", *PACKAGES], cwd=REPO, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout ({listed.stderr.strip()}): the tracked files are unknown")
    return [name for name in listed.stdout.splitlines() if (REPO / name).is_file()]


def test_the_wheel_holds_every_tracked_file_of_the_packages(tmp_path):
    tracked = tracked_package_files()
    source = tmp_path / "source"                 # a copy, so that the build leaves nothing in the checkout
    for name in tracked + ["pyproject.toml", "README.md"]:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    built = subprocess.run(
        [sys.executable, "-c", "import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))",
         str(tmp_path / "dist")], cwd=source, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = tmp_path / "dist" / built.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    missing = [name for name in tracked if name not in shipped]
    assert not missing, f"{len(missing)} tracked files are not in the wheel, e.g. {missing[:5]}"
    assert {name for name in tracked if name.startswith("reports/published/")} >= {
        "reports/published/README.md", "reports/published/table5_temperature_l2norm.csv"}
