"""A run killed during its final evaluation keeps the protocols it finished: the rerun runs the others only, and its
final.json holds what an uninterrupted run's does."""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from simclr_core.checkpoint import load_checkpoint, save_checkpoint
from simclr_core.evaluate import protocols as protocols_module
from simclr_core.partial_evaluation import PARTIAL_NAME
from simclr_core.train import train

from test_train import tiny

THREE = {"max_steps": 2, "data.test_limit": 1000, "eval.protocols": ("knn", "linear", "finetune"),
         "eval.linear_epochs": 2, "eval.finetune_fractions": (0.1,), "eval.finetune_epochs": 1,
         "eval.finetune_batch_size": 16}
# What differs between any two sessions: their clocks, and (a session that only evaluates) no training throughput.
TIMINGS = {"pretrain_seconds_this_session", "pretrain_seconds", "pretrain_device_seconds", "eval_seconds",
           "images_per_s"}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, a SLURM time limit or a kill, in the middle of a protocol."""


def count_protocol_runs(monkeypatch, interrupt: str | None = None) -> Counter:
    """Count each protocol's runs; the first run of `interrupt` raises Interrupted instead of finishing."""
    calls: Counter = Counter()
    for name, protocol in list(protocols_module.PROTOCOLS.items()):
        def run(*args, _name=name, _run=protocol.run, **kwargs):
            calls[_name] += 1
            if _name == interrupt:
                raise Interrupted
            return _run(*args, **kwargs)
        monkeypatch.setitem(protocols_module.PROTOCOLS, name, dataclasses.replace(protocol, run=run))
    return calls


def final(run_dir: Path) -> dict:
    return {k: v for k, v in json.loads((run_dir / "final.json").read_text()).items() if k not in TIMINGS}


def interrupted_run(run_dir: Path, monkeypatch, cut: str) -> Counter:
    """train() of the THREE protocols, interrupted in protocol `cut`; each protocol's runs."""
    with monkeypatch.context() as patch:
        calls = count_protocol_runs(patch, interrupt=cut)
        with pytest.raises(Interrupted):
            train(tiny(**THREE), run_dir)
    return calls


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("full") / "run"
    train(tiny(**THREE), run_dir)
    assert not (run_dir / PARTIAL_NAME).exists()
    return final(run_dir)


@pytest.mark.parametrize("cut, before", [("linear", ["knn"]), ("finetune", ["knn", "linear"])])
def test_a_rerun_after_an_interrupted_evaluation_runs_only_the_protocols_left(tmp_path, monkeypatch, capfd,
                                                                               uninterrupted, cut, before):
    run_dir = tmp_path / "run"
    calls = interrupted_run(run_dir, monkeypatch, cut)
    assert calls == Counter({**{name: 1 for name in before}, cut: 1})
    assert not (run_dir / "final.json").exists()
    saved = json.loads((run_dir / PARTIAL_NAME).read_text())["protocols"]
    assert sorted(saved) == sorted(before)
    capfd.readouterr()

    with monkeypatch.context() as patch:
        calls = count_protocol_runs(patch)
        train(tiny(**THREE), run_dir)
    left = [name for name in THREE["eval.protocols"] if name not in before]
    assert calls == Counter(left)                              # the finished protocols did not run again
    err = capfd.readouterr().err
    assert (f"evaluate run: {', '.join(before)} already done before the interruption (kept); "
            f"running {', '.join(left)}") in err
    assert final(run_dir) == uninterrupted                     # identical numbers, whatever ran before each protocol
    assert not (run_dir / PARTIAL_NAME).exists()


def test_protocols_saved_for_other_weights_run_again(tmp_path, monkeypatch, capfd):
    run_dir = tmp_path / "run"
    interrupted_run(run_dir, monkeypatch, "linear")
    assert "knn" in json.loads((run_dir / PARTIAL_NAME).read_text())["protocols"]
    capfd.readouterr()

    with monkeypatch.context() as patch:
        calls = count_protocol_runs(patch)
        train(tiny(**{**THREE, "max_steps": 3}), run_dir)           # trained one step further: other weights
    assert calls == Counter(["knn", "linear", "finetune"])
    err = capfd.readouterr().err
    assert (f"evaluate run: {PARTIAL_NAME} was saved for other step, weights, settings (max_steps); evaluating "
            "every protocol again") in err
    assert "already done" not in err


def test_protocols_saved_for_a_checkpoint_since_replaced_at_the_same_step_run_again(tmp_path, monkeypatch, capfd):
    run_dir = tmp_path / "run"
    interrupted_run(run_dir, monkeypatch, "linear")
    checkpoint = load_checkpoint(run_dir)
    weight = next(k for k, v in checkpoint["model"].items() if v.is_floating_point())
    checkpoint["model"][weight] += 1e-3                                  # another pretraining, same step and config
    save_checkpoint(run_dir, checkpoint)
    capfd.readouterr()

    with monkeypatch.context() as patch:
        calls = count_protocol_runs(patch)
        train(tiny(**THREE), run_dir)
    assert calls == Counter(["knn", "linear", "finetune"])
    assert f"{PARTIAL_NAME} was saved for other weights; evaluating every protocol again" in capfd.readouterr().err


def test_protocols_saved_under_other_evaluation_settings_run_again(tmp_path, monkeypatch, capfd):
    run_dir = tmp_path / "run"
    interrupted_run(run_dir, monkeypatch, "linear")
    capfd.readouterr()

    with monkeypatch.context() as patch:
        calls = count_protocol_runs(patch)
        metrics = train(tiny(**{**THREE, "eval.knn_k": 3}), run_dir)    # the same weights, another kNN
    assert calls["knn"] == 1 and metrics["steps"] == 2
    assert "saved for other settings (eval.knn_k); evaluating every protocol again" in capfd.readouterr().err
