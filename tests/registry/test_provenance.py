"""What code produced a run (registry/provenance.py): the commit of a checkout of the harness, and none where the
harness is installed inside some other git repository (a virtual environment in a user's project)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRINT_VERSION = ("import importlib.util, json, sys; spec = importlib.util.spec_from_file_location('p', sys.argv[1]); "
                 "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
                 "print(json.dumps(m.code_version()))")


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def version_of(provenance: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", PRINT_VERSION, str(provenance)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def committed_repo(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q")
    (folder / "README").write_text("a project\n")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "first")
    return git(folder, "rev-parse", "HEAD")


def test_a_checkout_records_its_commit_and_an_install_in_another_repository_none(tmp_path):
    checkout = tmp_path / "simclr-harness"
    (checkout / "registry").mkdir(parents=True)
    shutil.copy(REPO / "registry" / "provenance.py", checkout / "registry" / "provenance.py")
    sha = committed_repo(checkout)
    assert version_of(checkout / "registry" / "provenance.py")["git_sha"] == sha

    project = tmp_path / "my-project"
    committed_repo(project)
    installed = project / ".venv" / "lib" / "site-packages" / "registry" / "provenance.py"
    installed.parent.mkdir(parents=True)
    shutil.copy(REPO / "registry" / "provenance.py", installed)
    recorded = version_of(installed)
    assert recorded["git_sha"] is None and recorded["git_dirty"] is None, recorded
