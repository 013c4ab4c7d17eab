import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from simclr_core import stop_request
from simclr_core import train as train_module
from simclr_core.checkpoint import load_checkpoint
from simclr_core.config import RunConfig
from simclr_core.train import NonFiniteLossError, train
from simclr_core.validation import ConfigError

from first_step_reference import reference_first_step_loss

TINY = {
    "data.train_limit": 256, "data.test_limit": 100, "encoder.width": 0.25, "batch_size": 32,
    "epochs": 1, "optim.warmup_epochs": 0.25, "log_every_steps": 1, "checkpoint_every_steps": 3,
    "eval.knn_k": 10, "seed": 1,
}


def tiny(**overrides) -> RunConfig:
    return RunConfig().with_overrides({**TINY, **overrides})


def losses(run_dir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def assert_same_weights(full: Path, cut: Path) -> None:
    """The final checkpoints of an uninterrupted run and of one stopped and resumed hold the same weights, bit for
    bit."""
    a, b = load_checkpoint(full)["model"], load_checkpoint(cut)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


@pytest.mark.parametrize("local_crops", [0, 2])
def test_resumed_run_matches_uninterrupted_run(tmp_path, local_crops):
    small = {"augment.local_crops": local_crops}
    full = train(tiny(**small), tmp_path / "full")
    train(tiny(max_steps=3, **small), tmp_path / "cut")
    assert load_checkpoint(tmp_path / "cut")["step"] == 3
    resumed = train(tiny(**small), tmp_path / "cut")

    assert [s for s, _ in losses(tmp_path / "cut")] == list(range(1, 9))
    torch.testing.assert_close(torch.tensor(losses(tmp_path / "cut")), torch.tensor(losses(tmp_path / "full")),
                               rtol=0, atol=0)
    assert resumed["knn_top1"] == full["knn_top1"]
    assert_same_weights(tmp_path / "full", tmp_path / "cut")


def ask_to_stop_during_step(monkeypatch, done: int) -> None:
    """stop_request.request() while train() runs step `done` (1-based), as a SLURM job's SIGUSR2 handler would."""
    real = train_module.warmup_cosine

    def asking(step, *args):
        if step + 1 == done:
            assert stop_request.request()       # the training loop listens
        return real(step, *args)

    monkeypatch.setattr(train_module, "warmup_cosine", asking)


def test_a_stop_request_checkpoints_at_the_next_logging_step_and_the_resumed_run_is_exact(tmp_path, monkeypatch):
    # A SLURM time-limit warning stopped training at once: the requeued job resumed from the last periodic
    # checkpoint (every checkpoint_every_steps, 200 by default), training those steps again.
    every = {"log_every_steps": 2, "checkpoint_every_steps": 3}        # logs 2, 4, 6, 8; checkpoints 3, 6, 8
    full = train(tiny(**every), tmp_path / "full")
    ask_to_stop_during_step(monkeypatch, 3)
    with pytest.raises(stop_request.StoppedAtCheckpoint) as stopped:
        train(tiny(**every), tmp_path / "cut")
    assert stopped.value.step == 4 and load_checkpoint(tmp_path / "cut")["step"] == 4   # past the periodic one (3)
    assert not (tmp_path / "cut" / "final.json").exists()
    assert not stop_request.request()             # nobody listens once train() has stopped

    monkeypatch.undo()
    resumed = train(tiny(**every), tmp_path / "cut")
    assert [s for s, _ in losses(tmp_path / "cut")] == [2, 4, 6, 8]
    torch.testing.assert_close(torch.tensor(losses(tmp_path / "cut")), torch.tensor(losses(tmp_path / "full")),
                               rtol=0, atol=0)
    assert resumed["knn_top1"] == full["knn_top1"]
    assert_same_weights(tmp_path / "full", tmp_path / "cut")


def test_a_stop_requested_after_the_last_logging_step_stops_before_the_evaluation(tmp_path, monkeypatch):
    real = train_module._save

    def asked_while_saving_the_last_step(accelerator, run_dir, model, optimizer, step, *args):
        real(accelerator, run_dir, model, optimizer, step, *args)
        if step == 4:
            assert stop_request.request()

    monkeypatch.setattr(train_module, "_save", asked_while_saving_the_last_step)
    with pytest.raises(stop_request.StoppedAtCheckpoint) as stopped:
        train(tiny(max_steps=4), tmp_path / "run")
    assert stopped.value.step == 4 and not (tmp_path / "run" / "final.json").exists()
    monkeypatch.undo()
    assert train(tiny(max_steps=4), tmp_path / "run")["steps"] == 4     # resumed: evaluates only


def test_a_checkpoint_is_resumed_only_under_the_config_it_was_trained_with(tmp_path):
    """A folder's checkpoint, resumed under another loss temperature, continued its weights silently and reported
    them as the new config's. How a run is carried out (max_steps, logging cadence, the data's folder) and
    evaluated (eval.*: other evaluations of one pretraining) may change."""
    run = tmp_path / "run"
    train(tiny(max_steps=3), run)
    with pytest.raises(ConfigError, match=r"^\S+/run/checkpoint.pt \(step 3\) was trained under another config: "
                                          r"loss.temperature was 0.5, now 0.2; epochs was 1.0, now 2.0. Resuming would "
                                          r"continue its weights under settings they were not trained with. Run this "
                                          r"config in another folder, or move \S+checkpoint.pt aside"):
        train(tiny(max_steps=3, **{"loss.temperature": 0.2, "epochs": 2}), run)
    assert load_checkpoint(run)["step"] == 3
    resumed = train(tiny(max_steps=4, log_every_steps=2, **{"eval.knn_k": 5, "data.loader": "resident",
                                                           "data.test_limit": 50}), run)
    assert resumed["steps"] == 4


def test_a_cifar_stem_on_views_above_64_px_is_a_warning_naming_its_cost(tmp_path, recwarn):
    train(tiny(**{"data.image_size": 72, "encoder.stem": "cifar", "max_steps": 1}), tmp_path / "cifar_stem")
    said = [str(w.message) for w in recwarn if "encoder.stem='cifar'" in str(w.message)]
    assert len(said) == 1 and said[0].startswith("encoder.stem='cifar' (no downsampling) on 72 px views")
    recwarn.clear()
    train(tiny(**{"data.image_size": 72, "max_steps": 1}), tmp_path / "auto_stem")
    assert not [w for w in recwarn if "encoder.stem" in str(w.message)]


def test_rows_logged_after_the_last_checkpoint_are_dropped_on_resume(tmp_path):
    run = tmp_path / "run"
    train(tiny(max_steps=5), run)   # checkpoints at 3 and 5, logs 1..5
    ckpt = load_checkpoint(run)
    ckpt["step"] = 3                 # as if killed after logging steps 4-5 but before checkpointing them
    torch.save(ckpt, run / "checkpoint.pt")
    train(tiny(max_steps=6), run)
    assert [s for s, _ in losses(run)] == [1, 2, 3, 4, 5, 6]


def test_rows_of_an_attempt_killed_before_its_first_checkpoint_are_not_kept_twice(tmp_path):
    run = tmp_path / "run"
    train(tiny(max_steps=2), run)
    (run / "checkpoint.pt").unlink()   # as if killed after logging steps 1-2 but before writing any checkpoint
    train(tiny(max_steps=3), run)
    assert [s for s, _ in losses(run)] == [1, 2, 3]


def test_partial_files_of_writes_cut_by_a_kill_are_deleted_when_the_run_starts_again(tmp_path):
    # SIGKILL or a power loss while checkpoint.pt was written left its temporary file (as large as a checkpoint)
    # beside it for good, one more per such kill.
    run = tmp_path / "run"
    train(tiny(max_steps=2), run)
    cut = [run / ".checkpoint.pt.k1ll3d.tmp", run / ".final.json.k1ll3d.tmp", run / ".metrics.jsonl.k1ll3d.tmp",
           run / ".evaluation-partial.json.k1ll3d.tmp", run / ".finetune-progress.pt.k1ll3d.tmp"]
    for path in cut:
        path.write_bytes(b"PK\x03\x04 cut short")
    (run / ".checkpoint.pt.other").write_text("not a temporary file of ours")
    train(tiny(max_steps=3), run)
    assert not [path for path in cut if path.exists()]
    assert (run / ".checkpoint.pt.other").exists() and load_checkpoint(run)["step"] == 3


def poison_loss_at(monkeypatch, call: int) -> None:
    """train()'s loss becomes NaN at its `call`-th computation (1-based)."""
    calls = {"n": 0}
    real = train_module.compute_multicrop_loss

    def poisoned(cfg, z1, z2, small):
        calls["n"] += 1
        loss = real(cfg, z1, z2, small)
        return loss * float("nan") if calls["n"] == call else loss

    monkeypatch.setattr(train_module, "compute_multicrop_loss", poisoned)


def test_an_interrupted_run_ends_its_progress_line_before_the_interruption_is_reported(tmp_path, monkeypatch, capfd):
    # Ctrl-C or SIGTERM mid-training: registry's "interrupted: ..." line was printed at the end of the progress
    # bar's line, glued to it, and the bar drawn again below it.
    real, calls = train_module.compute_multicrop_loss, {"n": 0}

    def interrupted_at_the_second_step(cfg, z1, z2, small):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(cfg, z1, z2, small)

    monkeypatch.setattr(train_module, "compute_multicrop_loss", interrupted_at_the_second_step)
    with pytest.raises(KeyboardInterrupt) as interrupted:
        train(tiny(max_steps=4), tmp_path / "run")
    shown = capfd.readouterr().err     # read while the interruption is handled, as registry's main() prints its line
    assert "1/4" in shown and shown.endswith("\n"), interrupted


def test_non_finite_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    poison_loss_at(monkeypatch, 5)
    with pytest.raises(NonFiniteLossError, match="step 3"):
        train(tiny(), tmp_path / "run")
    assert load_checkpoint(tmp_path / "run")["step"] == 3
    assert not (tmp_path / "run" / "final.json").exists()


def test_non_finite_batchnorm_statistics_are_never_checkpointed(tmp_path, monkeypatch):
    """A finite loss can leave an infinite running_var behind (as optim.base_lr=1e9 did): the run stops
    at the next checkpoint naming the buffer, and the checkpoint on disk is the last one with finite state."""
    real_build = train_module.build_model

    def build_then_poison(*args, **kwargs):
        model = real_build(*args, **kwargs)
        calls = {"n": 0}

        def poison(module, inputs, output):
            calls["n"] += 1
            if calls["n"] == 5:
                dict(module.named_buffers())["encoder.bn1.running_var"].fill_(float("inf"))

        model.register_forward_hook(poison)
        return model

    monkeypatch.setattr(train_module, "build_model", build_then_poison)
    with pytest.raises(NonFiniteLossError, match=r"encoder\.bn1\.running_var at step 6 .*checkpoint \(step 3\)"):
        train(tiny(), tmp_path / "run")
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint["step"] == 3
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values() if t.is_floating_point())


def test_a_damaged_checkpoint_fails_naming_its_path_and_the_way_out(tmp_path):
    train(tiny(max_steps=3), tmp_path / "run")
    path = tmp_path / "run" / "checkpoint.pt"
    data = path.read_bytes()
    for damaged in (data[: len(data) // 2], data[:100] + b"\0" * (len(data) - 100)):
        path.write_bytes(damaged)
        with pytest.raises(ConfigError, match="checkpoint.pt cannot be read .*truncated or damaged.*--redo") as err:
            train(tiny(), tmp_path / "run")
        assert str(path) in str(err.value)


def test_a_full_disk_names_the_checkpoint_and_keeps_the_previous_one(tmp_path):
    """RLIMIT_FSIZE makes writes past the limit fail as a full disk does (EFBIG instead of ENOSPC)."""
    script = textwrap.dedent(f"""
        import resource, signal, torch
        from simclr_core.checkpoint import save_checkpoint, load_checkpoint
        save_checkpoint({str(tmp_path)!r}, {{"step": 1, "w": torch.zeros(10)}})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        try:
            save_checkpoint({str(tmp_path)!r}, {{"step": 2, "w": torch.zeros(1_000_000)}})
        except OSError as exc:
            print("ERROR", exc)
        print("STEP", load_checkpoint({str(tmp_path)!r})["step"])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"could not write {tmp_path / 'checkpoint.pt'}: File too large" in done.stdout
    assert "inline_container" not in done.stdout and "STEP 1" in done.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]          # no temporary file left behind


def test_a_metrics_line_cut_by_a_kill_is_dropped_with_a_warning_on_resume(tmp_path):
    run = tmp_path / "run"
    train(tiny(max_steps=3), run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "lo')                                            # killed mid-write
    with pytest.warns(UserWarning, match=r"metrics.jsonl, line 4: not a metrics row, dropped"):
        train(tiny(max_steps=4), run)
    assert [s for s, _ in losses(run)] == [1, 2, 3, 4]


def test_a_resume_with_another_process_count_says_so_and_final_json_records_it(tmp_path, recwarn):
    run = tmp_path / "run"
    train(tiny(max_steps=3), run)
    ckpt = load_checkpoint(run)
    assert ckpt["processes"] == 1 and ckpt["processes_seen"] == [1]
    same = train(tiny(max_steps=4), run)                                   # resumed by as many processes
    assert "processes_seen" not in same and not [w for w in recwarn if "process" in str(w.message)]
    assert same["pretrain_device_seconds"] == pytest.approx(same["pretrain_seconds"])
    ckpt = load_checkpoint(run)
    ckpt["processes"], ckpt["processes_seen"] = 2, [2]                     # as if 2 processes had written it
    ckpt["pretrain_device_seconds"] = 100.0
    torch.save(ckpt, run / "checkpoint.pt")
    with pytest.warns(UserWarning, match=r"resuming at step 4 with 1 process\(es\), where its checkpoint was "
                                         r"written by 2: .*final.json lists every process count"):
        metrics = train(tiny(max_steps=5), run)
    assert metrics["processes_seen"] == [1, 2] and metrics["processes"] == 1
    assert metrics["pretrain_device_seconds"] == pytest.approx(100.0 + metrics["pretrain_seconds_this_session"])
    recwarn.clear()
    again = train(tiny(max_steps=6), run)                                  # the next resume keeps the record
    assert again["processes_seen"] == [1, 2] and not [w for w in recwarn if "process" in str(w.message)]
    assert json.loads((run / "final.json").read_text())["processes_seen"] == [1, 2]

    ckpt = load_checkpoint(run)
    ckpt["processes"], ckpt["processes_seen"] = 2, [2]
    torch.save(ckpt, run / "checkpoint.pt")
    recwarn.clear()
    evaluated = train(tiny(max_steps=6), run)          # nothing left to train: evaluated by 1, trained by 2 only
    assert "processes_seen" not in evaluated and not [w for w in recwarn if "process" in str(w.message)]


def test_a_resume_on_another_device_says_so_and_final_json_lists_both(tmp_path, recwarn):
    run = tmp_path / "run"
    train(tiny(max_steps=3), run)
    assert json.loads((run / "final.json").read_text())["device"].startswith("cpu (")
    here = "cpu"                                 # devices_seen names the model, not the thread count
    assert load_checkpoint(run)["devices_seen"] == [here]
    same = train(tiny(max_steps=4), run)                                   # resumed on the same device
    assert "devices_seen" not in same and not [w for w in recwarn if "device" in str(w.message)]
    ckpt = load_checkpoint(run)
    ckpt["devices_seen"] = ["NVIDIA H100 80GB HBM3"]                      # as if a GPU had written it
    torch.save(ckpt, run / "checkpoint.pt")
    with pytest.warns(UserWarning, match=rf"resuming at step 4 on {re.escape(here)}, where its checkpoint was "
                                         r"written on NVIDIA H100 80GB HBM3: .*devices_seen"):
        metrics = train(tiny(max_steps=5), run)
    assert metrics["devices_seen"] == ["NVIDIA H100 80GB HBM3", here] and metrics["device"].startswith("cpu (")
    assert json.loads((run / "final.json").read_text())["devices_seen"] == ["NVIDIA H100 80GB HBM3", here]
    recwarn.clear()
    again = train(tiny(max_steps=6), run)                                  # the next resume keeps the record
    assert again["devices_seen"] == ["NVIDIA H100 80GB HBM3", here]
    assert not [w for w in recwarn if "device" in str(w.message)]


def test_a_checkpoint_without_devices_seen_resumes_as_if_written_here(tmp_path, recwarn):
    run = tmp_path / "run"
    train(tiny(max_steps=3), run)
    ckpt = load_checkpoint(run)
    del ckpt["devices_seen"]                                              # written before devices were kept
    torch.save(ckpt, run / "checkpoint.pt")
    metrics = train(tiny(max_steps=4), run)
    assert "devices_seen" not in metrics and not [w for w in recwarn if "device" in str(w.message)]
    assert load_checkpoint(run)["devices_seen"] == ["cpu"]


def test_a_resume_with_another_thread_count_is_the_same_device(tmp_path, recwarn, monkeypatch):
    # A CPU run resumed by another process count gets another thread count per process: still the same device.
    run = tmp_path / "run"
    train(tiny(max_steps=3), run)
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads + 1)
    metrics = train(tiny(max_steps=4), run)
    assert metrics["device"] == f"cpu ({threads + 1} threads)"
    assert "devices_seen" not in metrics and not [w for w in recwarn if "device" in str(w.message)]


def test_bad_config_fails_before_any_data_is_loaded(tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded")

    monkeypatch.setattr(train_module, "open_feed", no_data)
    with pytest.raises(ConfigError, match="loss.temperature"):
        train(tiny(**{"loss.temperature": 0.0}), tmp_path / "run")
    with pytest.raises(ConfigError, match="augment.ops"):
        train(tiny(**{"augment.ops": ("crop", "jigsaw")}), tmp_path / "run")


def test_batch_larger_than_dataset_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="batch_size=512"):
        train(tiny(batch_size=512), tmp_path / "run")


def test_finished_run_writes_final_metrics(tmp_path):
    metrics = train(tiny(max_steps=2), tmp_path / "run")
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["steps"] == 2 and final["total_steps"] == 8
    assert 0 <= final["knn_top1"] <= 100 and final == json.loads(json.dumps(metrics))
    assert final["data_loader"] == "resident" and "cifar10_subset" in final["data_source"]


def test_periodic_knn_is_logged_each_period_and_not_repeated_at_the_end(tmp_path, monkeypatch):
    from simclr_core.evaluate import protocols
    calls = []
    real_knn = protocols.knn_eval
    monkeypatch.setattr(protocols, "knn_eval", lambda *a, **kw: calls.append(1) or real_knn(*a, **kw))
    metrics = train(tiny(epochs=3, **{"eval.knn_every_epochs": 1}), tmp_path / "run")   # 8 steps per epoch
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["epoch"]) for r in rows if "knn_top1" in r] == [(8, 1.0), (16, 2.0)]
    assert len(calls) == 3                          # epochs 1 and 2, then the final evaluation (epoch 3) once
    assert 0 <= metrics["knn_top1"] <= 100


def train_in_two_processes(cfg: RunConfig, run_dir: Path, out_dir: Path,
                           ask_to_stop: tuple[int, int] | None = None) -> list[dict]:
    """train(cfg, run_dir) in 2 CPU processes under torchrun (gloo); each rank's {"rank", "world", "metrics"}, or
    {"rank", "world", "stopped_at"} when it stopped on request. `ask_to_stop` = (rank, step): that rank alone calls
    stop_request.request() during that step (1-based)."""
    script = out_dir / "run_two.py"
    script.write_text(textwrap.dedent("""
        import json, os, sys
        import torch.distributed as dist
        from simclr_core import stop_request, train as train_module
        from simclr_core.config import RunConfig
        from simclr_core.train import train
        from pathlib import Path
        ask = json.loads(sys.argv[4])
        if ask and int(os.environ["RANK"]) == ask[0]:
            real = train_module.warmup_cosine
            def asking(step, *args):
                if step + 1 == ask[1]:
                    stop_request.request()
                return real(step, *args)
            train_module.warmup_cosine = asking
        try:
            result = {"metrics": train(RunConfig.from_dict(json.loads(sys.argv[2])), sys.argv[1])}
        except stop_request.StoppedAtCheckpoint as stopped:
            result = {"stopped_at": stopped.step}
        # One file per rank: two ranks printing long lines into one pipe can interleave them.
        result.update(rank=dist.get_rank(), world=dist.get_world_size())
        (Path(sys.argv[3]) / f"rank{dist.get_rank()}.json").write_text(json.dumps(result))
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(29400 + os.getpid() % 500), str(script), str(run_dir),
                          json.dumps(cfg.to_dict()), str(out_dir), json.dumps(ask_to_stop)], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads((out_dir / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("local_crops", [0, 2])
def test_two_process_training_equals_one_process_on_the_whole_batch(tmp_path, local_crops):
    """2 CPU processes (Accelerate MULTI_CPU, gloo): with global BN and negatives gathered across ranks, the
    first step's loss equals one process computing on the union of both ranks' views, with multi-crop's
    small views too."""
    cfg = tiny(max_steps=2, precision="no", **{"encoder.global_bn": True, "augment.local_crops": local_crops})
    results = train_in_two_processes(cfg, tmp_path / "run", tmp_path)
    assert [r["rank"] for r in results] == [0, 1] and all(r["world"] == 2 for r in results)
    metrics = [r["metrics"] for r in results]
    assert metrics[0]["knn_top1"] == metrics[1]["knn_top1"] and metrics[0]["processes"] == 2
    assert load_checkpoint(tmp_path / "run")["step"] == 2

    logged = losses(tmp_path / "run")[0][1]
    assert logged == pytest.approx(reference_first_step_loss(cfg, world=2, global_bn=True), rel=1e-4)
    # Per-rank BN statistics would give a different loss: the global BN is really in use.
    assert abs(logged - reference_first_step_loss(cfg, world=2, global_bn=False)) > 1e-4


@pytest.mark.distributed
@pytest.mark.slow
def test_a_stop_request_seen_by_one_rank_checkpoints_both_at_the_same_step(tmp_path):
    """Rank 1 alone is asked during step 3: both ranks save (rank 0 writes) the checkpoint of the next logging
    step, 4, and stop; the run resumed in two processes ends as one that never stopped."""
    cfg = tiny(precision="no", log_every_steps=2, **{"encoder.global_bn": True})
    full = train_in_two_processes(cfg, tmp_path / "full", tmp_path)
    stopped = train_in_two_processes(cfg, tmp_path / "cut", tmp_path, ask_to_stop=(1, 3))
    assert [r.get("stopped_at") for r in stopped] == [4, 4]
    assert load_checkpoint(tmp_path / "cut")["step"] == 4
    resumed = train_in_two_processes(cfg, tmp_path / "cut", tmp_path)
    assert [s for s, _ in losses(tmp_path / "cut")] == [2, 4, 6, 8]
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")
    assert resumed[0]["metrics"]["knn_top1"] == full[0]["metrics"]["knn_top1"]
    assert_same_weights(tmp_path / "full", tmp_path / "cut")


def test_tensorboard_tracker_writes_event_files(tmp_path):
    train(tiny(max_steps=2, trackers=("tensorboard",)), tmp_path / "run")
    events = list((tmp_path / "run").rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)


def test_a_tracker_whose_package_is_missing_stops_the_run_before_it_starts(tmp_path, monkeypatch):
    # Accelerate alone would warn and log nowhere: the run would end without the curves it was asked for.
    from accelerate.utils import imports

    from simclr_core.train import check_inputs

    monkeypatch.setattr(imports, "is_tensorboard_available", lambda: False)   # as Accelerate sees a machine without it
    cfg = tiny(max_steps=2, trackers=("tensorboard",))
    for attempt in (lambda: check_inputs(cfg), lambda: train(cfg, tmp_path / "run")):
        with pytest.raises(ConfigError) as error:
            attempt()
        assert str(error.value).startswith("trackers='tensorboard' needs the Python package 'tensorboard'")
        assert "pip install 'tensorboard'" in str(error.value)
    assert not (tmp_path / "run").exists()


def test_every_tracker_the_config_accepts_is_one_accelerate_knows():
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    from simclr_core.trackers import TRACKERS

    assert set(TRACKERS) <= set(LOGGER_TYPE_TO_CLASS)


@pytest.mark.slow
def test_pretraining_on_the_embedded_subset_learns(tmp_path):
    """A few CPU minutes of SimCLR lift kNN accuracy clearly above the same encoder at random init."""
    from simclr_core.demo import demo_config, random_init_knn

    cfg = demo_config({"epochs": "8", "checkpoint_every_steps": "1000"})
    before = random_init_knn(cfg)
    after = train(cfg, tmp_path / "run")["knn_top1"]
    print(f"kNN top-1: random init {before:.1f}%, after 8 epochs {after:.1f}%")
    assert after >= before + 8.0, (before, after)


@pytest.mark.distributed
def test_the_demo_takes_epochs_and_prints_its_result_once_under_torchrun(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    args = [str(torchrun), "--nproc_per_node", "2", "-m", "simclr_core.demo", "--epochs", "2",
            "--run-dir", str(tmp_path / "demo"), "max_steps=1", "data.train_limit=256", "data.test_limit=100",
            "batch_size=64"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2],
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count('"pretrained_knn_top1"') == 1
    assert load_checkpoint(tmp_path / "demo")["config"]["epochs"] == 2


def test_the_demo_refuses_a_bad_override_in_one_line(tmp_path):
    for bad, needle in ((["epochs"], "must look like key=value"), (["--epochs", "0"], "epochs=0.0 is out of range")):
        done = subprocess.run([sys.executable, "-m", "simclr_core.demo", "--run-dir", str(tmp_path), *bad],
                              capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2])
        assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr


def test_the_demo_in_a_folder_of_another_configs_checkpoint_says_so_in_one_line(tmp_path):
    """It resumed the checkpoint silently; then, before this test, the refusal was a traceback."""
    train(tiny(max_steps=1), tmp_path / "demo")
    done = subprocess.run([sys.executable, "-m", "simclr_core.demo", "--run-dir", str(tmp_path / "demo"), "max_steps=1",
                           "data.train_limit=256", "data.test_limit=100"],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {tmp_path / 'demo' / 'checkpoint.pt'} (step 1) was trained under another "
                                  "config: ")


def test_the_demo_on_a_full_disk_says_so_in_one_error(small_disk):
    full = small_disk("1m", full=True)
    done = subprocess.run([sys.executable, "-m", "simclr_core.demo", "--run-dir", str(full / "demo"),
                           "max_steps=1", "data.train_limit=256", "data.test_limit=100", "batch_size=64"],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2])
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"could not write {full / 'demo'}" in done.stderr and "No space left on device" in done.stderr
    assert "the disk refused a write" in done.stderr and "Traceback" not in done.stderr, done.stderr[-3000:]


def test_the_final_evaluation_says_which_protocol_runs(tmp_path, capfd):
    train(tiny(**{"max_steps": 1, "eval.protocols": ("knn", "linear"), "eval.linear_epochs": 1}), tmp_path / "said")
    err = capfd.readouterr().err
    assert "evaluate said" in err and "knn" in err and "linear" in err and "2/2" in err


def test_an_evaluation_interrupted_in_its_last_protocol_is_not_shown_complete(tmp_path, monkeypatch, capfd):
    # Ctrl-C or SIGTERM during the last protocol: the bar was closed at 2/2 (100%) above "interrupted: ...".
    real = train_module.run_protocols

    def interrupted_in_linear(*args, announce=None, **kwargs):
        def announce_then_stop(name):
            announce(name)
            if name == "linear":
                raise KeyboardInterrupt
        return real(*args, announce=announce_then_stop, **kwargs)

    monkeypatch.setattr(train_module, "run_protocols", interrupted_in_linear)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(**{"max_steps": 1, "eval.protocols": ("knn", "linear"), "eval.linear_epochs": 1}), tmp_path / "cut")
    err = capfd.readouterr().err
    assert "1/2" in err and "linear" in err and "2/2" not in err
