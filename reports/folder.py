"""The report folder holds one build: the files it wrote, each whole, and none left from an earlier build.

Each file is replaced whole (simclr_core.atomic_files), so a reader never opens half a page. A build lists its
files in MANIFEST; the next build into the folder removes the files the previous one listed that it does not
write again (`report fig5` after a full report: every other section's page, figure and CSV), so the folder never
holds a table built from other results beside the new index. Files no build listed (a user's notes) are never
touched. The manifest is written before the first file too, listing the previous build's files and every file
this one is about to write, so that a build killed half-way leaves nothing the next one would not know of.

A folder holding a report built before reports listed their files (its index.html, report.md, summary.csv or
conclusions.csv, and no manifest): the files named as a report names them that this build did not write are left as
they are and named, since which of them a report wrote can no longer be told.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import pandas as pd

from simclr_core.atomic_files import atomic_write_bytes, atomic_write_text

MANIFEST = ".report-files.json"
# A report's own file names: what an unlisted report (built before the manifest) may have left.
_LISTINGS = ("index.html", "report.md", "summary.csv", "conclusions.csv")
_REPORT_FILE = re.compile(r"^(index\.html|report\.md|summary\.csv|conclusions\.csv|.+_[A-Za-z0-9_-]+\.(md|png|csv))$")


class ReportFolder:
    """Write a report's files into `path` (created), then `finish()`: list them and remove the previous build's
    files not written again."""

    def __init__(self, path: Path, planned: Iterable[str]):
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)
        self.previous = _listed(self.path / MANIFEST)
        # An earlier report that listed none of its files: its pages are there without a manifest.
        self.unlisted_report = self.previous is None and any((self.path / name).is_file() for name in _LISTINGS)
        self.written: list[str] = []
        listed = sorted(set(self.previous or ()) | set(planned))
        atomic_write_text(self.path / MANIFEST, json.dumps({"files": listed}, indent=1) + "\n")

    def write_bytes(self, name: str, data: bytes) -> Path:
        atomic_write_bytes(self.path / name, lambda f: f.write(data))
        return self._wrote(name)

    def write_text(self, name: str, text: str) -> Path:
        atomic_write_text(self.path / name, text)
        return self._wrote(name)

    def write_csv(self, name: str, frame: pd.DataFrame) -> Path:
        return self.write_text(name, frame.to_csv(index=False))

    def _wrote(self, name: str) -> Path:
        self.written.append(name)
        return self.path / name

    def finish(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """List this build's files as the folder's report and remove the previous build's others. Returns (the
        files removed, the files an unlisted earlier report may have left, which stay)."""
        atomic_write_text(self.path / MANIFEST, json.dumps({"files": sorted(self.written)}, indent=1) + "\n")
        kept = set(self.written)
        if self.previous is None:
            if not self.unlisted_report:
                return (), ()
            unlisted = sorted(p.name for p in self.path.iterdir()
                              if p.is_file() and p.name not in kept and _REPORT_FILE.match(p.name))
            return (), tuple(unlisted)
        removed = []
        for name in sorted(set(self.previous) - kept):
            target = self.path / name
            if target.is_file() and not target.is_symlink():
                target.unlink()
                removed.append(name)
        return tuple(removed), ()


def _listed(manifest: Path) -> list[str] | None:
    """The file names a previous build listed, or None where no build listed any (no manifest, or one that cannot
    be read). Only plain names inside the folder count: a damaged manifest never removes files elsewhere."""
    try:
        files = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, list):
        return None
    return [name for name in files if isinstance(name, str) and name and "/" not in name and "\\" not in name
            and name not in (".", "..", MANIFEST)]
