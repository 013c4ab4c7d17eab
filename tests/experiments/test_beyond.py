"""The quality recipes as declared experiments (experiments/beyond_*.py): they resolve at every scale, the commands
their docstrings give reproduce the recipes that benchmarks/bench_quality.py used to hold key by key, and
bench_quality's table reads a store correctly."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
from pathlib import Path

import pytest

from registry import SCALES, RunStore, get_experiment
from registry.__main__ import select
from registry.overrides import parse_overrides
from simclr_core.config import RunConfig

ROOT = Path(__file__).resolve().parents[2]
BEYOND = ("beyond_cpu_recipe", "beyond_multicrop", "beyond_dcl", "beyond_gpu_recipe")
# Each point adds one change to the one before it; the others vary one choice around the two-view recipe.
LADDERS = ("beyond_cpu_recipe", "beyond_gpu_recipe")


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "benchmarks" / "bench_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

# ---- the reference: bench_quality.py's RECIPES before issue 18, copied value for value -------------------------
OLD_RECIPES: dict[str, dict] = {
    "cpu60": {
        "overrides": {
            "encoder.name": "resnet18", "encoder.width": 0.25, "encoder.stem": "cifar",
            "batch_size": 256, "augment.ops": ("crop", "color"), "augment.color_strength": 0.5,
            "augment.crop_scale": (0.2, 1.0),
            "loss.kind": "nt_xent", "loss.temperature": 0.2,
            "optim.name": "lars", "optim.lr_scaling": "linear", "optim.base_lr": 1.0,
            "optim.weight_decay": 1e-6, "optim.warmup_epochs": 2.0,
            "precision": "auto", "channels_last": True, "eval.protocols": ("knn",),
            "checkpoint_every_steps": 500, "log_every_steps": 50,
        },
    },
    "cpu60-sgd": {"overrides": {"optim.name": "sgd", "optim.base_lr": 0.25, "optim.weight_decay": 5e-4},
                  "base": "cpu60"},
    "cpu60-sgd-lr0.5": {"overrides": {"optim.base_lr": 0.5}, "base": "cpu60-sgd"},
    "cpu60-sgd-lr1": {"overrides": {"optim.base_lr": 1.0}, "base": "cpu60-sgd-lr0.5"},
    "cpu60-dcl": {"overrides": {"loss.kind": "dcl"}, "base": "cpu60-sgd-lr0.5"},
    "cpu60-multicrop": {"overrides": {"augment.local_crops": 2, "augment.local_crop_size": 16,
                                      "augment.local_crop_scale": (0.1, 0.4)},
                        "base": "cpu60-sgd-lr0.5"},
}


def old_recipe_overrides(name: str) -> dict:
    recipe = OLD_RECIPES[name]
    return {**(old_recipe_overrides(recipe["base"]) if "base" in recipe else {}), **recipe["overrides"]}


def old_recipe_config(name: str, epochs: float, knn_every: int) -> RunConfig:
    """The config the old `bench_quality.py --recipe NAME --epochs E --knn-every K` trained. It also set
    data.data_dir to $SIMCLR_DATA_DIR/cifar10; a registry run leaves it None and train() reads the same
    variable (a path: not part of a run id)."""
    return RunConfig().with_overrides({
        **old_recipe_overrides(name), "data.dataset": "cifar10", "data.data_dir": None,
        "epochs": epochs, "eval.knn_every_epochs": knn_every,
    }).validate()


# Where each old recipe lives now: (experiment, --only label).
NEW_HOME = {
    "cpu60": ("beyond_cpu_recipe", "cpu60"),
    "cpu60-sgd": ("beyond_cpu_recipe", "cpu60-sgd"),
    "cpu60-sgd-lr0.5": ("beyond_cpu_recipe", "cpu60-sgd-lr0.5"),
    "cpu60-sgd-lr1": ("beyond_cpu_recipe", "cpu60-sgd-lr1"),
    "cpu60-dcl": ("beyond_dcl", "dcl+0.2"),
    "cpu60-multicrop": ("beyond_multicrop", "2"),
}
# The hour's compute on top of the cpu scale, as the docstrings give it (epochs and kNN monitoring added per run).
HOUR = ("optim.warmup_epochs=2", "data.train_limit=none", "data.test_limit=none", "eval.protocols=knn",
        "eval.linear_epochs=100")


def resolve_command(tokens: list[str]):
    """The one run a bench_quality command line selects, parsed by bench_quality's own parser."""
    args, extra = bench.build_parser().parse_known_args(tokens)
    overrides = parse_overrides([*args.overrides, *extra])
    runs = select(get_experiment(args.name).runs(args.scale, overrides, seeds=args.seeds), args.only)
    assert len(runs) == 1, [r.run_id for r in runs]
    return runs[0], overrides


def assert_same_config(got: RunConfig, want: RunConfig) -> None:
    got, want = got.flat(), want.flat()
    assert got.keys() == want.keys()
    differ = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert not differ, f"(registry, old recipe) differ: {differ}"


# ---- declarations ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BEYOND)
@pytest.mark.parametrize("scale", list(SCALES))
def test_resolves_at_every_scale_with_the_recipe_choices(name, scale):
    experiment = get_experiment(name)
    runs = experiment.runs(scale)
    assert len(runs) == len(experiment.axes) * len(experiment.seeds_at(scale))
    assert experiment.published is None and {"knn_top1", "linear_top1"} <= set(experiment.all_metrics)
    for run in runs:
        cfg = run.config
        assert cfg.data.dataset in ("cifar10", "cifar10_subset") and cfg.encoder.stem == "cifar"
        if name not in LADDERS:      # the two-view recipe at every scale; the axis changes the rest
            assert (cfg.optim.name, cfg.optim.base_lr, cfg.optim.weight_decay) == ("sgd", 0.5, 5e-4)
            assert cfg.augment.crop_scale == (0.2, 1.0)
        if scale == "cpu":
            assert (cfg.batch_size, cfg.encoder.name, cfg.encoder.width) == (256, "resnet18", 0.25)


def test_the_cpu_recipe_steps_add_one_change_each():
    runs = {r.label: r.config for r in get_experiment("beyond_cpu_recipe").runs("cpu")}
    assert list(runs) == ["b9", "cpu60", "cpu60-sgd", "cpu60-sgd-lr0.5", "cpu60-sgd-lr1"]
    flat = {label: cfg.flat() for label, cfg in runs.items()}
    changed = [sorted(k for k in flat[b] if flat[a][k] != flat[b][k]) for a, b in zip(flat, list(flat)[1:])]
    assert changed == [["augment.crop_scale", "loss.temperature"],
                       ["optim.base_lr", "optim.name", "optim.weight_decay"], ["optim.base_lr"], ["optim.base_lr"]]
    assert runs["b9"].loss.temperature == 0.5 and runs["b9"].optim.name == "lars"


def test_the_gpu_recipe_steps_add_one_change_each_and_fit_15_minutes_of_an_h200():
    from registry.estimate import estimate

    runs = {r.label: r.config for r in get_experiment("beyond_gpu_recipe").runs("gpu", seeds=(0,))}
    assert list(runs) == ["b9", "cpu-recipe", "multicrop"]
    for cfg in runs.values():
        assert (cfg.encoder.name, cfg.encoder.width, cfg.batch_size, cfg.data.train_limit) == ("resnet18", 1.0, 512, None)
        assert cfg.eval.knn_k == 200 and cfg.eval.knn_every_epochs == 50 and "knn" in cfg.eval.protocols
        # Planned with the rate measured on an H200 (train() eager): training and evaluation inside 15 minutes.
        assert estimate(cfg, "gpu").hours * 60 < 15
    flat = {label: cfg.flat() for label, cfg in runs.items()}
    changed = [sorted(k for k in flat[b] if flat[a][k] != flat[b][k]) for a, b in zip(flat, list(flat)[1:])]
    assert changed == [["augment.crop_scale", "loss.temperature", "optim.base_lr", "optim.name", "optim.weight_decay"],
                       ["augment.local_crop_scale", "augment.local_crop_size", "augment.local_crops", "epochs"]]
    assert [runs[label].epochs for label in runs] == [400, 400, 320]
    assert runs["b9"].optim.name == "lars" and runs["b9"].loss.temperature == 0.5


@pytest.mark.parametrize("scale", list(SCALES))
def test_the_two_view_recipe_is_one_config_in_all_three_experiments(scale):
    """So that a results folder trains it once and the others evaluate its pretraining."""
    hashes = {next(r.hash for r in get_experiment(name).runs(scale, seeds=(0,)) if r.label == label)
              for name, label in (("beyond_cpu_recipe", "cpu60-sgd-lr0.5"), ("beyond_multicrop", "0"),
                                  ("beyond_dcl", "nt_xent+0.2"))}
    assert len(hashes) == 1


# ---- the old recipes, reproduced ----------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", list(OLD_RECIPES))
def test_every_old_recipe_is_a_cpu_scale_run_plus_the_hour_overrides(recipe):
    name, label = NEW_HOME[recipe]
    run, _ = resolve_command([name, "--scale", "cpu", "--only", label, "epochs=27", "eval.knn_every_epochs=9",
                              *HOUR])
    assert_same_config(run.config, old_recipe_config(recipe, epochs=27, knn_every=9))


def documented_commands(doc: str) -> list[list[str]]:
    """The bench_quality.py command lines of a beyond_* experiment in a docstring (continuation lines joined),
    as argument lists."""
    joined = re.sub(r"\\\n\s*", " ", doc)
    return [line.split("benchmarks/bench_quality.py", 1)[1].split()
            for line in joined.splitlines()
            if line.strip().startswith(".venv/bin/python benchmarks/bench_quality.py beyond_")]


@pytest.mark.parametrize("module, recipe", [
    ("experiments.beyond_cpu_recipe", "cpu60-sgd-lr0.5"),
    ("experiments.beyond_multicrop", "cpu60-multicrop"),
    ("experiments.beyond_dcl", "cpu60-dcl"),
    ("bench_quality", "cpu60-multicrop"),
])
def test_the_documented_command_reproduces_the_old_recipe_exactly(module, recipe):
    doc = inspect.getdoc(bench if module == "bench_quality" else importlib.import_module(module))
    commands = documented_commands(doc)
    assert len(commands) == 1, commands
    run, overrides = resolve_command(commands[0])
    assert run.scale == "cpu" and run.experiment == NEW_HOME[recipe][0]
    want = old_recipe_config(recipe, epochs=float(overrides["epochs"]),
                             knn_every=int(overrides.get("eval.knn_every_epochs", 0)))
    assert_same_config(run.config, want)


def test_without_the_overrides_the_cpu_scale_is_a_proxy_not_the_recipe():
    run, _ = resolve_command(["beyond_multicrop", "--scale", "cpu", "--only", "2"])
    cfg = run.config
    assert (cfg.epochs, cfg.data.train_limit, cfg.data.test_limit) == (3.0, 10_000, 2_000)
    assert cfg.eval.protocols == ("knn", "linear")


# ---- bench_quality's table -----------------------------------------------------------------------------------
def _finish(store: RunStore, run, final: dict, started: str, finished: str, **status) -> None:
    store.write_config(run, {"git_sha": "0" * 40, "git_dirty": False})
    store.write_final(run.run_id, final)
    store.write_status(run.run_id, "done", started=started, finished=finished, **status)


def test_table_reads_time_and_quality_from_the_store(tmp_path):
    experiment = get_experiment("beyond_multicrop")
    runs = experiment.runs("cpu")
    store = RunStore(tmp_path)
    _finish(store, runs[0], {"knn_top1": 61.234, "linear_top1": 63.5, "knn_top5": 96.0, "epochs_done": 3.0,
                             "images_per_s": 512.4, "pretrain_seconds": 90.0, "eval_seconds": 12.25},
            "2026-12-01T10:00:00+00:00", "2026-12-01T10:02:00+00:00", resumed=False)
    _finish(store, runs[1], {"knn_top1": 70.5, "linear_top1": 71.0, "knn_top5": 98.1, "epochs_done": 27.0,
                             "images_per_s": None, "pretrain_seconds": 3540.0, "eval_seconds": 120.0,
                             "pretraining_from": "beyond_dcl/nt_xent+0.2-abc"},
            "2026-12-01T11:00:00+00:00", "2026-12-01T11:02:00+00:00", resumed=False)
    store.mark_pending(runs[2], {"git_sha": "0" * 40, "git_dirty": False})

    rows = [bench.quality_row(store, run, experiment.all_metrics) for run in runs]
    table = bench.format_table(rows, experiment.all_metrics, budget_min=60).splitlines()
    assert table[0] == ("| run | seed | state | epochs | images/s | pretraining min | evaluation s | wall min | "
                        "budget 60 min | knn_top1 | linear_top1 | knn_top5 |")
    assert table[2] == "| 0 | 0 | done | 3.0 | 512 | 1.50 | 12.2 | 2.00 | within | 61.23 | 63.50 | 96.00 |"
    # evaluated another run's pretraining: judged on pretraining + evaluation (3,660 s > 60 min), marked *
    assert table[3] == "| 2 | 0 | done | 27.0 | - | 59.00 | 120.0 | 2.00 | OVER* | 70.50 | 71.00 | 98.10 |"
    assert table[4] == "| 4 | 0 | pending | - | - | - | - | - | - | - | - | - |"
    assert table[-1] == "2 (seed 0) evaluated the pretraining of beyond_dcl/nt_xent+0.2-abc"
    assert any(line.startswith("* resumed, or evaluated") for line in table)


def test_knn_curve_lists_the_evaluations_during_training_then_the_final_one(tmp_path):
    run = get_experiment("beyond_dcl").runs("smoke")[0]
    store = RunStore(tmp_path)
    _finish(store, run, {"knn_top1": 55.0, "epochs_done": 3.0}, "2026-12-01T10:00:00+00:00",
            "2026-12-01T10:00:30+00:00")
    rows = [{"step": 10, "epoch": 1.0, "loss": 5.0}, {"step": 10, "epoch": 1.0, "knn_top1": 40.0},
            {"step": 20, "epoch": 2.0, "knn_top1": 50.5}]
    (store.run_dir(run.run_id) / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    curve = bench.knn_curve(store, run)
    assert curve == [(1.0, 40.0), (2.0, 50.5), (3.0, 55.0)]
    assert bench.format_curve("x", curve).splitlines()[-1] == "| 3.0 (final) | 55.00% |"
