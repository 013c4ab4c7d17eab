"""The experiment registry: declarations -> runs with stable ids -> a results store, from a laptop to SLURM.

    from registry import list_experiments, get_experiment, load_results
    runs = get_experiment("augment_pairs").runs("smoke")      # 49 validated runs, nothing started
    python -m registry --help                                  # list | show | validate | run | status | ...
"""
from simclr_core.hugepages import request_huge_pages

request_huge_pages()   # before anything imports torch: see simclr_core/hugepages.py

from registry.declare import Axes, Experiment, Published, Run, cases, grid, zip_axes
from registry.discover import get_experiment, list_experiments
from registry.scales import DEFAULT_SCALE, SCALES, Scale, get_scale
from registry.store import RunStore, default_results_dir, load_results
from registry.sweep_space import Sweep

__all__ = [
    "Axes", "Experiment", "Published", "Run", "cases", "grid", "zip_axes",
    "get_experiment", "list_experiments",
    "DEFAULT_SCALE", "SCALES", "Scale", "get_scale",
    "RunStore", "default_results_dir", "load_results",
    "Sweep",
]
