"""Fixtures shared by the test folders."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
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
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)   # a file still open there


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


@pytest.fixture
def fake_cgroups(tmp_path):
    """`fake_cgroups(self_cgroup, folders, meminfo="")` -> (proc, root): a /proc whose self/cgroup (and meminfo)
    hold the given text, and a cgroup tree under root whose folders ("" is root itself) hold the given files."""
    def make(self_cgroup: str, folders: dict[str, dict[str, str]], meminfo: str = "") -> tuple[Path, Path]:
        proc, root = tmp_path / "proc", tmp_path / "cgroup"
        (proc / "self").mkdir(parents=True)
        (proc / "self" / "cgroup").write_text(self_cgroup)
        (proc / "meminfo").write_text(meminfo)
        for folder, files in folders.items():
            (root / folder).mkdir(parents=True, exist_ok=True)
            for name, text in files.items():
                (root / folder / name).write_text(text)
        return proc, root

    return make


def _cgroup_maker(made: list[Path], controller: str, v1_files: dict[str, str], v2_files: dict[str, str]):
    """A fresh cgroup of `controller` with its limit files written (v1 if mounted, else v2 with the controller
    enabled); returns a `preexec_fn` that moves a subprocess into it. Skips the test where that is not possible."""
    v1, v2 = Path("/sys/fs/cgroup") / controller, Path("/sys/fs/cgroup")
    name = f"simclr-test-{os.getpid()}-{len(made)}"
    v2_enabled = (v2 / "cgroup.subtree_control").exists() and \
        controller in (v2 / "cgroup.subtree_control").read_text().split()
    if os.geteuid() == 0 and (v1 / "cgroup.procs").exists() and (v1 / next(iter(v1_files))).exists():
        folder, files = v1 / name, v1_files
    elif os.geteuid() == 0 and v2_enabled:
        folder, files = v2 / name, v2_files
    else:
        pytest.skip(f"needs root and a writable {controller} cgroup (v1 controller, or v2 with it enabled)")
    try:
        folder.mkdir()
        for file, text in files.items():
            (folder / file).write_text(text)
    except OSError as exc:
        pytest.skip(f"cannot make a {controller} cgroup: {exc}")
    made.append(folder)
    procs = folder / "cgroup.procs"
    return lambda: procs.write_text(str(os.getpid()))


def _remove_cgroups(made: list[Path]) -> None:
    for folder in made:
        for _ in range(50):
            try:
                folder.rmdir()
                break
            except OSError:           # its last process is still exiting
                time.sleep(0.1)


@pytest.fixture
def memory_cgroup():
    """`memory_cgroup(limit_bytes)` -> a `preexec_fn` that moves a subprocess into a fresh memory cgroup holding
    it to `limit_bytes`, as a container or a SLURM job does; removed after the test. Needs root and a writable
    cgroup file system: elsewhere the test skips."""
    made: list[Path] = []
    yield lambda limit_bytes: _cgroup_maker(made, "memory", {"memory.limit_in_bytes": str(limit_bytes)},
                                            {"memory.max": str(limit_bytes)})
    _remove_cgroups(made)


@pytest.fixture
def cpu_quota_cgroup():
    """`cpu_quota_cgroup(cpus)` -> a `preexec_fn` that moves a subprocess into a fresh cgroup whose CPU quota is
    `cpus` CPUs, as `docker --cpus` sets; removed after the test. Needs root and a writable cgroup file system."""
    made: list[Path] = []
    period = 100_000
    yield lambda cpus: _cgroup_maker(made, "cpu", {"cpu.cfs_period_us": str(period),
                                                    "cpu.cfs_quota_us": str(int(cpus * period))},
                                     {"cpu.max": f"{int(cpus * period)} {period}"})
    _remove_cgroups(made)


@pytest.fixture
def isolated_data_caches(tmp_path, monkeypatch):
    """The decoded cache and Hugging Face's datasets cache in the test's folder, and no $SIMCLR_DATA_DIR."""
    import datasets

    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("SIMCLR_DATA_DIR", raising=False)


PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """No Hub copy in the HF cache, and the HF flags as an online machine without offline mode has them."""
    import datasets
    import huggingface_hub

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", *PROXY_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    # The discard port, closed: refused at once. The Hub client reads $HF_ENDPOINT at import, hence both.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
