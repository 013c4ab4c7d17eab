"""Find the declarations: every module in the `experiments` package that defines `EXPERIMENT`, and the content
modules beside them (the scales in experiments/scales.py, the sweeps in experiments/sweeps.py).

A user's own ablations can live outside the package, in their own project (the package installed with a plain
`pip install`): every `*.py` file not starting with "_" in the folders of $SIMCLR_EXPERIMENTS_DIR (several
separated by os.pathsep) declares one EXPERIMENT too, as a module of `experiments` does, and/or SWEEPS =
(Sweep(...), ...) and SCALES = (Scale(...), ...) beside the package's experiments/sweeps.py and scales.py.

The registry never imports `experiments` statically (it sits below it): the package is imported here, by name,
on first use. A name declared twice is an error naming both modules (two files silently shadowing each other
would make results depend on import order).
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import importlib
import importlib.util
import os
import pkgutil
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, TypeVar

from simclr_core.validation import ConfigError, did_you_mean

if TYPE_CHECKING:
    from registry.declare import Experiment

# The package the registry discovers its content in: the one place the registry names a layer above it.
PACKAGE = "experiments"
# Modules of the package that hold shared pieces or other content rather than an experiment's declaration.
NOT_DECLARATIONS = frozenset({"base", "scales", "sweeps"})
# Folders of declarations outside the package (os.pathsep-separated).
EXPERIMENTS_DIR_ENV = "SIMCLR_EXPERIMENTS_DIR"
# What a file of those folders may declare instead of (or besides) an EXPERIMENT: `Declared` entries it adds to.
USER_DECLARABLE = ("SWEEPS", "SCALES")

T = TypeVar("T")


@functools.lru_cache(maxsize=None)
def _registry() -> dict[str, Experiment]:
    return {name: experiment for name, (experiment, _) in _declarations().items()}


@functools.lru_cache(maxsize=None)
def _declarations() -> dict[str, tuple[Experiment, ModuleType]]:
    # Imported here, not above: registry.declare imports registry.scales, which imports this module.
    from registry.declare import Experiment

    found: dict[str, tuple[Experiment, ModuleType]] = {}
    where: dict[str, str] = {}
    user_files = dict(_user_modules())
    for origin, module in _declaration_modules():
        experiment = getattr(module, "EXPERIMENT", None)
        if origin in user_files and experiment is None and any(hasattr(module, a) for a in USER_DECLARABLE):
            continue                     # a file of the user's that declares only sweeps or scales
        if experiment is not None and not isinstance(experiment, Experiment):
            raise ConfigError(f"{origin}: EXPERIMENT is {experiment!r:.80}, not an Experiment(...)")
        if experiment is None:
            also = "".join(f" or {a} = (...)" for a in USER_DECLARABLE) if origin in user_files else ""
            raise ConfigError(f"{origin} defines no EXPERIMENT = Experiment(...){also}")
        if experiment.name in found:
            raise ConfigError(f"experiment {experiment.name!r} is declared twice: in {where[experiment.name]} "
                              f"and in {origin}")
        shown_by = next((name for name, (other, _) in found.items() if other.artefact == experiment.artefact), None)
        if shown_by is not None:     # a report shows one experiment per artefact: the other's runs would be in none
            raise ConfigError(f"{origin}: experiment {experiment.name!r} reports as artefact {experiment.artefact!r}, "
                              f"as experiment {shown_by!r} (in {where[shown_by]}) does: no report would show its "
                              f"runs; rename it, or give it artefact='{experiment.name}_own'")
        found[experiment.name] = (experiment, module)
        where[experiment.name] = origin
    return found


def declaring_module(name: str) -> ModuleType:
    """The module that declares experiment `name` (its docstring states the question or the claim)."""
    get_experiment(name)
    return _declarations()[name][1]


def _package() -> ModuleType:
    """The package's own `experiments`, the folder installed beside `registry`, whatever the current directory holds.

    `python -m` puts the current directory first on sys.path, so a folder named `experiments` there (a project of
    the user's, even an empty folder: a namespace package) would be imported by that name ahead of an editable
    install, or of any install where it holds an __init__.py: it is put out of sys.modules, and the package is
    loaded from its own folder, so that the declarations' `from experiments.base import ...` finds it too."""
    folder = Path(__file__).resolve().parent.parent / PACKAGE
    init = folder / "__init__.py"
    if not init.is_file():                 # not installed beside the registry: the import system finds it
        return importlib.import_module(PACKAGE)
    loaded = sys.modules.get(PACKAGE)
    if loaded is not None and getattr(loaded, "__file__", None) and Path(loaded.__file__).resolve() == init:
        return loaded
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location(PACKAGE, init, submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    try:
        spec.loader.exec_module(package)
    except BaseException:
        del sys.modules[PACKAGE]
        raise
    return package


def _declaration_modules() -> Iterator[tuple[str, ModuleType]]:
    """(where, module) of every declaration: the package's modules by name, then the user's files by path."""
    package = _package()
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_") and info.name not in NOT_DECLARATIONS:
            yield f"{PACKAGE}.{info.name}", importlib.import_module(f"{PACKAGE}.{info.name}")
    yield from _user_modules()


@functools.lru_cache(maxsize=None)
def _user_modules() -> tuple[tuple[str, ModuleType], ...]:
    """(path, module) of every declaration file in the folders of $SIMCLR_EXPERIMENTS_DIR, loaded once.

    Each folder joins the end of sys.path, so that a declaration imports the helpers beside it by name (`from
    _common import BASE`; files starting with "_" declare nothing), and never shadows an installed package."""
    _package()                          # first: the user's files may import experiments.base
    folders = experiment_folders()
    _require_distinct_helpers(folders)
    sys.path.extend(str(folder) for folder in folders if str(folder) not in sys.path)
    return tuple((str(path), _load_file(path)) for folder in folders
                 for path in sorted(folder.glob("*.py")) if not path.name.startswith("_"))


def _require_distinct_helpers(folders: list[Path]) -> None:
    """ConfigError when two folders hold a helper of one name (`_shared.py`, or a package folder): on sys.path,
    the first would be imported by the declarations of both."""
    seen: dict[str, Path] = {}
    for folder in folders:
        helpers = list(folder.glob("_*.py")) + [p for p in folder.iterdir() if (p / "__init__.py").is_file()]
        for helper in sorted(helpers):
            name = helper.stem if helper.suffix == ".py" else helper.name
            if name in seen and seen[name].parent != folder:
                raise ConfigError(f"${EXPERIMENTS_DIR_ENV}: {seen[name]} and {helper} share the name {name!r}; "
                                  "the declarations of both folders would import the first: rename one")
            seen[name] = helper


def experiment_folders() -> list[Path]:
    """The folders of $SIMCLR_EXPERIMENTS_DIR; a ConfigError naming one that is not a folder."""
    setting = os.environ.get(EXPERIMENTS_DIR_ENV, "")
    folders = list(dict.fromkeys(Path(p).expanduser().absolute() for p in setting.split(os.pathsep) if p))
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(f"${EXPERIMENTS_DIR_ENV}={setting!r}: {folder} is not a folder; "
                              f"it names folders of *.py files that declare EXPERIMENT, SWEEPS or SCALES")
    return folders


def _load_file(path: Path) -> ModuleType:
    """Import the file as a module of its own (in sys.modules under a name unique to its path, so that pickle
    and dataclasses find it); any failure is a ConfigError naming the file."""
    name = f"_simclr_experiments_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"{path}: {exc if isinstance(exc, ConfigError) else f'{type(exc).__name__}: {exc}'}"
                          f"{_where_in(path, exc)}") from exc
    return module


def _where_in(path: Path, exc: Exception) -> str:
    """' (line N: its code)' for the last line of `path` that `exc` passed through; '' for a ConfigError (it names
    what is wrong) or a SyntaxError (its message names the line)."""
    if isinstance(exc, (ConfigError, SyntaxError)):
        return ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    if not frames:
        return ""
    return f" (line {frames[-1].lineno}: {frames[-1].line})" if frames[-1].line else f" (line {frames[-1].lineno})"


def list_experiments(pattern: str = "*") -> list[str]:
    """Names of the declared experiments matching the shell-style `pattern`, sorted."""
    return sorted(name for name in _registry() if fnmatch.fnmatchcase(name, pattern))


def get_experiment(name: str) -> Experiment:
    """The declaration called `name`; ConfigError listing the known names otherwise."""
    experiments = _registry()
    if name not in experiments:
        raise ConfigError(f"unknown experiment {name!r}; known experiments: {', '.join(sorted(experiments))} "
                          f"({where_declared('an experiment')}){did_you_mean(name, experiments)}")
    return experiments[name]


def where_declared(what: str) -> str:
    """Where the declarations were looked for, for an error about a name that none of them declares."""
    setting = os.environ.get(EXPERIMENTS_DIR_ENV)
    if setting:
        return f"from the package and ${EXPERIMENTS_DIR_ENV}={setting!r}"
    return f"{what} of your own is found through ${EXPERIMENTS_DIR_ENV}, which is unset"


class Declared(Mapping[str, T]):
    """A read-only mapping name -> entry of the sequence `attr` that `experiments.<module>` declares, in its order,
    then (for an `attr` of USER_DECLARABLE) those of the files of $SIMCLR_EXPERIMENTS_DIR.

    Nothing is imported until the first look-up (`SCALES["cpu"]`, `for name in SCALES`, `len(SCALES)`, ...);
    then every entry is checked to be a `kind` and named once. `registry.scales.SCALES` and
    `registry.sweep_space.SWEEPS` are two of these.
    """

    def __init__(self, module: str, attr: str, kind: type, name_of: Callable[[Any], str] = lambda e: e.name):
        self._module, self._attr, self._kind, self._name_of = module, attr, kind, name_of
        self._entries: dict[str, T] | None = None
        self._origin: dict[str, str] = {}

    @property
    def source(self) -> str:
        """Where the entries are declared, e.g. `experiments.scales.SCALES`."""
        return f"{PACKAGE}.{self._module}.{self._attr}"

    def _load(self) -> dict[str, T]:
        if self._entries is None:
            _package()
            module = importlib.import_module(f"{PACKAGE}.{self._module}")
            if not isinstance(getattr(module, self._attr, None), (tuple, list, Mapping)):
                raise ConfigError(f"{module.__name__} defines no {self._attr} = ({self._kind.__name__}(...), ...)")
            sources = [(self.source, module)]
            if self._attr in USER_DECLARABLE:
                sources += [(f"{path} ({self._attr})", user) for path, user in _user_modules()
                            if hasattr(user, self._attr)]
            entries: dict[str, T] = {}
            for source, holder in sources:
                declared = getattr(holder, self._attr)
                if isinstance(declared, Mapping):
                    declared = tuple(declared.values())
                if not isinstance(declared, (tuple, list)):
                    raise ConfigError(f"{source} is {declared!r}, not a tuple of {self._kind.__name__}(...)")
                for entry in declared:
                    if not isinstance(entry, self._kind):
                        raise ConfigError(f"{source} holds {entry!r}, not a {self._kind.__name__}")
                    name = self._name_of(entry)
                    if name in entries:
                        raise ConfigError(f"{self._attr[:-1].lower()} {name!r} is declared twice: in "
                                          f"{self._origin[name]} and in {source}")
                    entries[name] = entry
                    self._origin[name] = source
            self._entries = entries
        return self._entries

    def __getitem__(self, name: str) -> T:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __repr__(self) -> str:
        loaded = repr(self._entries) if self._entries is not None else "(not loaded yet)"
        return f"<{self.source}: {loaded}>"
