"""Find the declarations: every module in the `experiments` package that defines `EXPERIMENT`.

Imported once, on first use. A name declared twice is an error naming both modules (two files silently
shadowing each other would make results depend on import order).
"""
from __future__ import annotations

import fnmatch
import functools
import importlib
import pkgutil

from registry.declare import Experiment
from simclr_core.validation import ConfigError

PACKAGE = "experiments"
# Modules of the package that hold shared pieces rather than a declaration.
NOT_DECLARATIONS = frozenset({"base"})


@functools.lru_cache(maxsize=None)
def _registry() -> dict[str, Experiment]:
    package = importlib.import_module(PACKAGE)
    found: dict[str, Experiment] = {}
    where: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in NOT_DECLARATIONS:
            continue
        module = importlib.import_module(f"{PACKAGE}.{info.name}")
        experiment = getattr(module, "EXPERIMENT", None)
        if not isinstance(experiment, Experiment):
            raise ConfigError(f"{module.__name__} defines no EXPERIMENT = Experiment(...)")
        if experiment.name in found:
            raise ConfigError(f"experiment {experiment.name!r} is declared twice: in {where[experiment.name]} "
                              f"and in {module.__name__}")
        found[experiment.name] = experiment
        where[experiment.name] = module.__name__
    return found


def list_experiments(pattern: str = "*") -> list[str]:
    """Names of the declared experiments matching the shell-style `pattern`, sorted."""
    return sorted(name for name in _registry() if fnmatch.fnmatchcase(name, pattern))


def get_experiment(name: str) -> Experiment:
    """The declaration called `name`; ConfigError listing the known names otherwise."""
    experiments = _registry()
    if name not in experiments:
        raise ConfigError(f"unknown experiment {name!r}; known experiments: {', '.join(sorted(experiments))}")
    return experiments[name]
