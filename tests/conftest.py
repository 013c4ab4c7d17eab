"""Fixtures shared by the test folders."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def small_disk(tmp_path):
    """`small_disk(size, full=False)` -> a folder on a real tmpfs of `size` (e.g. "1m"), filled to its last block
    when `full` (the file `filler` holds it), unmounted after the test. Mounting needs root: elsewhere the test
    skips (CI runs as root)."""
    mounted: list[Path] = []

    def mount(size: str, full: bool = False) -> Path:
        folder = tmp_path / f"disk-{len(mounted)}"
        folder.mkdir()
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                               capture_output=True).returncode != 0:
            pytest.skip(f"needs root to mount a {size} tmpfs")
        mounted.append(folder)
        if full:
            with open(folder / "filler", "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 4096)
                except OSError:
                    pass
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], capture_output=True)
