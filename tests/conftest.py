"""Fixtures shared by the test folders."""
from __future__ import annotations

import os
import shutil
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


@pytest.fixture
def exfat_disk(tmp_path):
    """A folder on a real exFAT file system (FUSE, on a loop device over a 64 MiB image): no hard links, no
    permissions, as on a USB or external drive. Needs root, a loop device and Debian's exfat-fuse + exfatprogs
    (.ci/run installs them); elsewhere the test skips."""
    tools = ("losetup", "mkfs.exfat", "mount.exfat-fuse")
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in tools):
        pytest.skip(f"needs root and {', '.join(tools)} (apt-get install exfat-fuse exfatprogs)")
    image, folder = tmp_path / "exfat.img", tmp_path / "exfat"
    folder.mkdir()
    with open(image, "wb") as f:
        f.truncate(64 * 2**20)
    loop = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True)
    if loop.returncode != 0:
        pytest.skip(f"no loop device: {loop.stderr.strip()}")
    device = loop.stdout.strip()
    try:
        for command in (["mkfs.exfat", device], ["mount.exfat-fuse", device, str(folder)]):
            made = subprocess.run(command, capture_output=True, text=True)
            if made.returncode != 0:
                pytest.skip(f"{command[0]} failed: {made.stderr.strip()}")
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)    # its FUSE daemon was killed
        subprocess.run(["losetup", "--detach", device], capture_output=True)
