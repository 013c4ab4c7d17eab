"""Layers that point one way: simclr_core <- registry <- experiments / reports, read from every module's imports.

An import counts wherever it is (top level, inside a function, under TYPE_CHECKING), and so does a module named
to the import machinery (importlib.import_module, __import__, importlib.util.find_spec) as a string, a module-level
constant or an f-string built from one, or passed down to a function of the module that imports it, as well as
any string spelling a dotted module of a layer above ("reports.cli", "reports.cli:COMMAND"). The registry reaches
above itself only through its discovery seam, registry/discover.py's PACKAGE, which names the package whose
modules it loads at first use (experiments, experiments/scales.py, experiments/sweeps.py); the verbs that reports
adds come through package entry points (registry/commands.py), not imports.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Each layer and the top-level packages its modules must not import.
FORBIDDEN = {
    "simclr_core": {"registry", "experiments", "reports", "benchmarks"},
    "registry": {"experiments", "reports", "benchmarks"},
    "experiments": {"reports", "benchmarks"},
    "reports": {"benchmarks"},
}
# The seams through which a layer may name a package above it for plugin discovery: (module file, constant).
SEAMS = {("registry/discover.py", "PACKAGE")}
IMPORTERS = {"import_module", "__import__", "find_spec"}
DOTTED = re.compile(r"^(?P<top>[A-Za-z_]\w*)(\.[A-Za-z_]\w*)+(:[A-Za-z_][\w.]*)?$")


def _top(name: str) -> str:
    return name.split(".")[0].split(":")[0]


class _Module:
    """One module's source: its constants, and the module names it imports or hands to the import machinery."""

    def __init__(self, rel: str, source: str):
        self.rel = rel
        self.tree = ast.parse(source, filename=rel)
        self.constants: dict[str, str] = {}     # module-level NAME = "text"
        for node in self.tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            value = getattr(node, "value", None)
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                self.constants.update({t.id: value.value for t in targets if isinstance(t, ast.Name)})

    def _package(self) -> list[str]:
        return self.rel[:-3].split("/")[:-1]     # registry/plan.py and registry/__init__.py: ["registry"]

    def text(self, node: ast.AST) -> tuple[str | None, set[str]]:
        """The module name an expression spells, as far as it is known (a prefix), and the constants it used."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value, set()
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.constants[node.id], {node.id}
        if isinstance(node, ast.JoinedStr):
            text, used = "", set()
            for part in node.values:
                if isinstance(part, ast.FormattedValue):
                    part = part.value
                piece, names = self.text(part)
                if piece is None:
                    return (text or None), used
                text, used = text + piece, used | names
            return text, used
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, used = self.text(node.left)
            right, more = self.text(node.right)
            return (left + (right or "") if left is not None else None), used | more
        return None, set()

    def imported(self) -> list[tuple[int, str, set[str]]]:
        """(line, module name, constants it came through) for every import and every import-machinery call."""
        found: list[tuple[int, str, set[str]]] = []
        importing_params: dict[str, dict[int, str]] = {}   # function -> {position: parameter it imports}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                found += [(node.lineno, alias.name, set()) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = self._package()[:len(self._package()) - node.level + 1] if node.level else []
                names = [node.module] if node.module else [alias.name for alias in node.names]   # from .. import x
                found += [(node.lineno, ".".join(base + name.split(".")), set()) for name in names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = DOTTED.match(node.value)
                if match:
                    found.append((node.lineno, node.value, set()))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                params = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
                for call in ast.walk(node):
                    if self._is_importer(call) and call.args:
                        arg = call.args[0]
                        names = {n.id for n in ast.walk(arg) if isinstance(n, ast.Name)} & set(params)
                        for name in names:
                            importing_params.setdefault(node.name, {})[params.index(name)] = name
        for node in ast.walk(self.tree):
            if self._is_importer(node) and node.args:
                text, used = self.text(node.args[0])
                if text:
                    found.append((node.lineno, text, used))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in importing_params:
                flows = importing_params[node.func.id]
                args = [a for i, a in enumerate(node.args) if i in flows]
                args += [k.value for k in node.keywords if k.arg in flows.values()]
                for arg in args:
                    text, used = self.text(arg)
                    if text:
                        found.append((node.lineno, text, used))
        return found

    @staticmethod
    def _is_importer(node: ast.AST) -> bool:
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        return name in IMPORTERS


def violations(files: dict[str, str]) -> list[str]:
    """`rel path -> source` of the layered packages' modules -> one line per import pointing up a layer."""
    problems: list[str] = []
    for rel, source in sorted(files.items()):
        layer = rel.split("/")[0]
        module = _Module(rel, source)
        for line, name, used in module.imported():
            if _top(name) not in FORBIDDEN.get(layer, set()):
                continue
            if used and all((rel, constant) in SEAMS for constant in used):
                continue   # the discovery seam
            problem = f"{rel}:{line}: {layer} must not reach {_top(name)} ({name!r})"
            if problem not in problems:
                problems.append(problem)
    return problems


def repo_sources(root: Path = REPO) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
            for layer in FORBIDDEN for path in sorted((root / layer).rglob("*.py"))}


def test_every_import_points_down_a_layer():
    files = repo_sources()
    assert {rel.split("/")[0] for rel in files} == set(FORBIDDEN)
    assert violations(files) == []


def test_the_discovery_seam_exists_and_is_the_only_one():
    from registry import discover

    assert discover.PACKAGE == "experiments"
    # The seam is allowed in its own module only: the same constant anywhere else is an upward reach.
    assert SEAMS == {("registry/discover.py", "PACKAGE")}
    elsewhere = 'import importlib\nPACKAGE = "experiments"\nimportlib.import_module(f"{PACKAGE}.scales")\n'
    assert violations({"registry/scales.py": elsewhere}) == [
        "registry/scales.py:3: registry must not reach experiments ('experiments.scales')"]


@pytest.mark.parametrize("rel, source, reached", [
    # what registry/scales.py and registry/__main__.py did before the layers were made to point one way
    ("registry/scales.py", "from experiments.base import cifar10_base\n", "experiments"),
    ("registry/__main__.py", "import importlib\n\ndef _delegated_verb(verbs, name, module, help_text):\n"
                             "    impl = importlib.import_module(module)\n\n"
                             "def build():\n    _delegated_verb(None, 'report', 'reports', 'help')\n", "reports"),
    ("registry/__main__.py", "def f():\n    import reports.cli\n", "reports"),
    ("registry/plan.py", "from ..reports import build\n", "reports"),
    ("registry/plan.py", "from .. import reports\n", "reports"),
    ("registry/x.py", "import importlib\n\ndef load(module):\n    return importlib.import_module(module)\n\n"
                      "load(module='experiments')\n", "experiments"),
    ("registry/x.py", "import importlib\nMODULE = 'reports'\nimportlib.import_module(MODULE)\n", "reports"),
    ("registry/x.py", "COMMANDS = {'report': 'reports.cli:COMMAND'}\n", "reports"),
    ("registry/x.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from experiments import base\n",
     "experiments"),
    ("simclr_core/x.py", "import registry\n", "registry"),
    ("simclr_core/x.py", "__import__('benchmarks.bench_quality')\n", "benchmarks"),
    ("experiments/x.py", "from reports.artefacts import artefact\n", "reports"),
    ("reports/x.py", "from benchmarks import bench_quality\n", "benchmarks"),
])
def test_an_upward_reach_is_found(rel, source, reached):
    problems = violations({rel: source})
    assert len(problems) == 1 and f"must not reach {reached}" in problems[0], problems


@pytest.mark.parametrize("rel, source", [
    ("registry/x.py", "from registry.scales import SCALES\nfrom simclr_core import config\n"),
    ("registry/x.py", "from . import scales\n"),
    ("registry/x.py", '_CANDIDATES = (REPO / "reports" / "published",)\n'),   # a path, not a module
    ("experiments/x.py", "from registry import Experiment\nfrom experiments.base import cifar10_base\n"),
    ("reports/x.py", "from registry.store import load_results\nfrom experiments import base\n"),
])
def test_a_downward_import_is_fine(rel, source):
    assert violations({rel: source}) == []


# ---- the verbs of the layers above: package entry points, not imports ---------------------------------------
def test_report_is_the_reports_packages_verb_found_through_its_entry_point(monkeypatch, capsys):
    from dataclasses import replace
    from importlib.metadata import entry_points

    import reports.cli
    from registry.__main__ import main
    from registry.commands import GROUP

    assert [(e.name, e.value) for e in entry_points(group=GROUP)] == [("report", "reports.cli:COMMAND")]
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and out.startswith("usage: python -m registry report")
    assert reports.cli.__doc__.splitlines()[0] in out and "--results-dir" in out and "ARTEFACT" in out
    seen = []
    monkeypatch.setattr(reports.cli, "COMMAND", replace(reports.cli.COMMAND, main=lambda args: seen.append(args) or 7))
    assert main(["report", "tab4", "--scale", "cpu", "--out", "elsewhere"]) == 7
    assert (seen[0].artefacts, seen[0].scale, seen[0].out) == (["tab4"], ["cpu"], "elsewhere")


def test_without_the_entry_points_report_says_in_one_line_how_to_get_it(monkeypatch, capsys):
    from registry import commands
    from registry.__main__ import main

    monkeypatch.setattr(commands, "entry_points", lambda group: [])
    assert main(["report", "tab4", "--scale", "cpu"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "`report` is unavailable" in err and "pip install -e ." in err
    assert main(["list", "aug*"]) == 0 and capsys.readouterr().out.startswith("augment_pairs")
