"""The scale ladder: smoke -> cpu -> gpu -> paper, each with a purpose; the gpu scale's settings; the hours of an
experiment at every scale in `run --dry-run`, and `python -m registry scales`."""
from __future__ import annotations

import pytest

from registry import SCALES, get_experiment, get_scale, list_experiments
from registry.__main__ import main
from registry.estimate import split_sizes
from simclr_core.validation import ConfigError

# The cpu entry's device depends on the arithmetic the runs train in on this machine (registry/estimate.py).
DEVICE = {"cpu": ("measured on the 2-core reference CPU", "measured on a 2-core CPU without native bf16"),
          "gpu": ("measured on one NVIDIA H200",)}
UNIT = {"cpu": "CPU-hours", "gpu": "GPU-hours"}


def test_the_ladder_in_order_each_scale_with_a_purpose_and_its_default_seeds():
    assert list(SCALES) == ["smoke", "cpu", "gpu", "paper"]
    assert {name: (s.hardware, s.seeds) for name, s in SCALES.items()} == {
        "smoke": ("cpu", 1), "cpu": ("cpu", 1), "gpu": ("gpu", 2), "paper": ("gpu", 1)}
    for scale in SCALES.values():
        assert scale.purpose and "\n" not in scale.purpose and scale.summary


@pytest.mark.parametrize("name", list_experiments())
def test_the_gpu_scale_trains_all_of_cifar10_for_the_full_length_with_two_seeds(name):
    experiment = get_experiment(name)
    runs = experiment.runs("gpu")
    assert len(runs) == 2 * len(experiment.axes)
    assert sorted(r.config.seed for r in runs) == sorted([0, 1] * len(experiment.axes))
    cpu_points = {r.label: r.config for r in experiment.runs("cpu")}
    for run in runs:
        cfg = run.config
        assert cfg.data.dataset == "cifar10" and split_sizes(cfg) == (50_000, 10_000)
        assert cfg.data.train_limit is None and cfg.data.test_limit is None and cfg.max_steps is None
        assert cfg.encoder.stem == "cifar"
        # kNN and linear evaluation, then any protocol the experiment's metrics need (Table 3's probe, ...)
        assert cfg.eval.protocols[:2] == ("knn", "linear") and cfg.eval.linear_epochs == 90
        # Epochs factor 1 and batch factor 1/2: the cpu scale's 0.03 and 1/4 of the same axis point.
        cpu = cpu_points[run.label.removesuffix("+seed1")]
        assert cfg.epochs == pytest.approx(cpu.epochs / 0.03)
        assert cfg.batch_size == 2 * cpu.batch_size
        assert cfg.encoder.width == 4 * cpu.encoder.width and cfg.encoder.name == cpu.encoder.name


def test_the_gpu_scale_starts_from_appendix_b9_with_resnet18_x1_at_batch_512_for_100_epochs():
    cfg = next(r.config for r in get_experiment("loss_variant").runs("gpu") if r.point["loss.kind"] == "nt_xent")
    assert (cfg.encoder.name, cfg.encoder.width, cfg.batch_size, cfg.epochs) == ("resnet18", 1.0, 512, 100)
    assert (cfg.optim.name, cfg.optim.lr_scaling, cfg.optim.base_lr, cfg.optim.warmup_epochs) == ("lars", "linear",
                                                                                                   1.0, 10)
    assert cfg.loss.temperature == 0.5 and cfg.augment.color_strength == 0.5
    assert cfg.augment.ops == ("crop", "color")      # no blur


def test_an_unknown_scale_is_refused_naming_the_valid_ones(capsys):
    with pytest.raises(ConfigError, match="'huge'.*'smoke', 'cpu', 'gpu', 'paper'"):
        get_scale("huge")
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "loss_variant", "--scale", "huge", "--dry-run"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "huge" in err and all(name in err for name in SCALES)


def _ladder(out: str, experiment: str) -> dict[str, str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {experiment} at every scale"))
    rows = [line.split(None, 1) for line in lines[start + 1:start + 1 + len(SCALES)]]
    return {name: rest for name, rest in rows}


@pytest.mark.parametrize("scale", list(SCALES))
def test_dry_run_prints_the_experiments_hours_at_every_scale_naming_the_device(scale, tmp_path, monkeypatch,
                                                                               capsys):
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path))
    assert main(["run", "temperature_norm", "--scale", scale, "--dry-run"]) == 0
    ladder = _ladder(capsys.readouterr().out, "temperature_norm")
    assert list(ladder) == list(SCALES)
    for name, row in ladder.items():
        hardware = SCALES[name].hardware
        runs = len(get_experiment("temperature_norm").runs(name))
        assert row.startswith(f"{runs} runs") and UNIT[hardware] in row and any(d in row for d in DEVICE[hardware])
    assert "ResNet-18 x1 CIFAR 32 px, batch 512" in ladder["gpu"] and "ResNet-50 x1 224 px" in ladder["paper"]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("native_bf16", [True, False])
def test_dry_run_ladder_times_each_cpu_scale_in_the_arithmetic_it_trains_in_here(native_bf16, tmp_path, monkeypatch,
                                                                                capsys):
    monkeypatch.setattr("simclr_core.precision.cpu_supports_bf16", lambda: native_bf16)
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path))
    assert main(["run", "temperature_norm", "--scale", "cpu", "--dry-run"]) == 0
    out = capsys.readouterr().out
    ladder = _ladder(out, "temperature_norm")
    assert DEVICE["cpu"][1] in ladder["smoke"] and "fp32" in ladder["smoke"]      # the smoke scale sets precision no
    assert DEVICE["cpu"][0 if native_bf16 else 1] in ladder["cpu"]
    assert DEVICE["cpu"][0 if native_bf16 else 1] in next(line for line in out.splitlines() if "assumes the" in line)


def test_dry_run_ladder_applies_another_gpus_rate_to_the_gpu_scales_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path))
    assert main(["run", "loss_variant", "--scale", "gpu", "--dry-run", "--gpu-images-per-s", "1200"]) == 0
    ladder = _ladder(capsys.readouterr().out, "loss_variant")
    given = {name for name, row in ladder.items() if "given by --gpu-images-per-s" in row}
    assert given == {"gpu", "paper"}


def test_scales_verb_describes_every_scale(capsys):
    assert main(["scales"]) == 0
    out = capsys.readouterr().out
    blocks = {}
    for line in out.splitlines()[1:]:
        if not line.startswith(" "):
            blocks[line] = []
        else:
            blocks[list(blocks)[-1]].append(line.strip())
    assert list(blocks) == list(SCALES)
    for name, lines in blocks.items():
        scale = SCALES[name]
        fields = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in lines if line.split(None, 1)[0] in
                  ("purpose", "trains", "seeds", "hardware", "hours")}
        assert fields["purpose"] == scale.purpose and fields["hardware"] == scale.hardware
        assert fields["seeds"].startswith(f"{scale.seeds} ")
        assert fields["hours"].startswith(f"temperature_norm: {len(get_experiment('temperature_norm').runs(name))} runs")
        assert f"all {len(list_experiments())} experiments" in fields["hours"] and UNIT[scale.hardware] in fields["hours"]
        assert any(d in lines[-1] for d in DEVICE[scale.hardware])
    assert "cifar10, 50,000 training / 10,000 test images at 32 px; ResNet-18 x1, cifar stem; batch 512; 100 epochs; " \
           "evaluation knn + linear (90 epochs)" in "\n".join(blocks["gpu"])
    assert "imagenet, 1,281,167 training" in "\n".join(blocks["paper"])


def test_scales_verb_has_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["scales", "--help"])
    assert exit_info.value.code == 0 and "usage: python -m registry scales" in capsys.readouterr().out
