"""What code produced a run: git commit, uncommitted changes, and the versions of the packages that matter.

Recorded beside the run id in config.json, never inside it: the same configuration run from two commits
keeps one id, and the report can still tell the results apart.
"""
from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("simclr-harness", "torch", "torchvision", "accelerate", "numpy", "datasets", "submitit")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """{"git_sha", "git_dirty", "python", "packages"}; git fields are None outside a git checkout.

    Read-only git commands only: `diff-index` (tracked changes, without refreshing the index) and
    `ls-files --others` (untracked files that are not ignored: new modules change behaviour too).
    """
    # Only a checkout of this project itself: a harness installed into a virtual environment inside another git
    # repository (a user's project) would otherwise record that repository's commit as the harness's.
    toplevel = _git("rev-parse", "--show-toplevel")
    sha = _git("rev-parse", "HEAD") if toplevel and Path(toplevel).resolve() == REPO else None
    dirty = None
    if sha is not None:
        tracked = subprocess.run(["git", "-C", str(REPO), "diff-index", "--quiet", "HEAD", "--"],
                                 capture_output=True).returncode != 0
        untracked = bool(_git("ls-files", "--others", "--exclude-standard"))
        dirty = tracked or untracked
    return {"git_sha": sha, "git_dirty": dirty, "python": platform.python_version(),
            "packages": {name: _version(name) for name in PACKAGES}}
