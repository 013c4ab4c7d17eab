"""Views made a step ahead (simclr_core/augment/ahead.py): the order of the work, and the same training as
views made just in time."""
import threading

import pytest
import torch

from simclr_core.augment.ahead import VIEWS_AHEAD_MODES, resolve_views_ahead, views_ahead
from simclr_core.checkpoint import load_checkpoint
from simclr_core.train import train
from simclr_core.validation import ConfigError

from test_train import losses, poison_loss_at, tiny

CPU = torch.device("cpu")


def run(steps: int, ahead: bool):
    """What views_ahead does with `steps` batches: the log of makes and uses, with each buffer's identity
    and, at use, what it holds."""
    log, closed = [], []

    def batches():
        try:
            for step in range(steps):
                yield step, torch.tensor(float(step))
        finally:
            closed.append(True)

    def make(step, batch, buffers):
        buffers[0].fill_(batch)
        log.append(("make", step, id(buffers[0])))

    for step, buffers in views_ahead(batches(), make, lambda: (torch.empty(()),), ahead=ahead, device=CPU):
        log.append(("use", step, id(buffers[0]), buffers[0].item()))
    return log, closed


def test_ahead_makes_the_next_steps_views_before_each_step_into_the_other_buffer():
    log, closed = run(4, ahead=True)
    assert [entry[:2] for entry in log] == [("make", 0), ("make", 1), ("use", 0), ("make", 2), ("use", 1),
                                            ("make", 3), ("use", 2), ("use", 3)]
    made = {step: buffer for kind, step, buffer, *_ in log if kind == "make"}
    used = {step: (buffer, value) for kind, step, buffer, *value in log if kind == "use"}
    assert all(used[s] == (made[s], [float(s)]) for s in range(4))      # each step reads its own views
    assert made[0] != made[1] and made[2] == made[0] and made[3] == made[1]   # two buffers, in turn
    assert closed == [True]


def test_just_in_time_makes_each_steps_views_into_one_buffer():
    log, closed = run(3, ahead=False)
    assert [entry[:2] for entry in log] == [("make", 0), ("use", 0), ("make", 1), ("use", 1), ("make", 2),
                                            ("use", 2)]
    assert len({entry[2] for entry in log}) == 1 and closed == [True]


@pytest.mark.parametrize("ahead", [True, False])
def test_a_loop_that_stops_early_closes_the_batches(ahead):
    closed = []

    def batches():
        try:
            yield from ((step, torch.tensor(0.0)) for step in range(5))
        finally:
            closed.append(True)

    steps = views_ahead(batches(), lambda *args: None, lambda: (torch.empty(()),), ahead=ahead, device=CPU)
    with pytest.raises(KeyboardInterrupt):
        try:
            for step, _ in steps:
                if step == 1:
                    raise KeyboardInterrupt
        finally:
            steps.close()       # as train() does
    assert closed == [True]


def test_auto_is_on_for_cuda_and_off_on_cpus():
    assert resolve_views_ahead("auto", torch.device("cuda")) == "on"
    assert resolve_views_ahead("auto", CPU) == "off"
    assert all(resolve_views_ahead(m, CPU) == m for m in ("on", "off"))
    assert VIEWS_AHEAD_MODES == ("auto", "on", "off")


def test_a_bad_mode_is_refused_naming_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="views_ahead.*'yes'.*auto.*on.*off"):
        train(tiny(views_ahead="yes"), tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("local_crops", [0, 2])
def test_views_made_ahead_train_exactly_as_views_made_just_in_time(tmp_path, local_crops):
    small = {"augment.local_crops": local_crops}
    just_in_time = train(tiny(views_ahead="off", **small), tmp_path / "off")
    train(tiny(views_ahead="on", max_steps=3, **small), tmp_path / "on")       # and resumed, ahead
    ahead = train(tiny(views_ahead="on", **small), tmp_path / "on")
    assert just_in_time["views_ahead"] == "off" and ahead["views_ahead"] == "on"
    assert losses(tmp_path / "on") == losses(tmp_path / "off")
    assert ahead["knn_top1"] == just_in_time["knn_top1"]
    a, b = load_checkpoint(tmp_path / "off")["model"], load_checkpoint(tmp_path / "on")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_the_streamed_path_made_ahead_trains_as_just_in_time_and_stops_its_reader(tmp_path, monkeypatch):
    from test_stream import image_set, logged_losses, stream_config, write_folder

    images = image_set(24)
    write_folder(tmp_path / "data", images)
    write_folder(tmp_path / "data", images[:8], split="test")
    for mode in ("off", "on"):
        train(stream_config(tmp_path / "data", "imagefolder", max_steps=3, views_ahead=mode), tmp_path / mode)
    assert logged_losses(tmp_path / "on") == logged_losses(tmp_path / "off")
    poison_loss_at(monkeypatch, 2)
    with pytest.raises(FloatingPointError):
        train(stream_config(tmp_path / "data", "imagefolder", views_ahead="on"), tmp_path / "poisoned")
    assert not any(t.name == "stream-batches" and t.is_alive() for t in threading.enumerate())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_cuda_views_made_ahead_on_a_side_stream_train_as_just_in_time(tmp_path):
    """The side stream's events order every write before its step and after the last step reading it: a
    missing wait would let step k read step k+1's views (or half-written ones) and change the losses. Eager:
    this is about the streams, and compiling (tested on its own) would take most of a short GPU slot."""
    for mode in ("off", "on"):
        train(tiny(views_ahead=mode, precision="no", compile="off", max_steps=6), tmp_path / mode)
    (s_off, l_off), (s_on, l_on) = (zip(*losses(tmp_path / m)) for m in ("off", "on"))
    assert s_off == s_on
    torch.testing.assert_close(torch.tensor(l_on), torch.tensor(l_off), rtol=1e-5, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_cuda_views_made_ahead_wait_on_no_host_sync():
    from simclr_core.augment import build_augmentation
    from simclr_core.config import RunConfig

    cfg = RunConfig().with_overrides({"batch_size": 16})
    cuda = torch.device("cuda")
    augment = build_augmentation(cfg.augment, 32, (0.5,) * 3, (0.25,) * 3)
    pool = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device=cuda)
    generator = torch.Generator()

    def batches():
        for step in range(6):
            generator.manual_seed(step)
            rows = torch.randperm(len(pool), generator=generator)[:16].to(cuda, non_blocking=True)
            yield step, pool.index_select(0, rows)

    def make(step, batch, buffers):
        augment(batch, generator, out=buffers[0])

    steps = views_ahead(batches(), make, lambda: (torch.empty((32, 3, 32, 32), device=cuda),), ahead=True,
                        device=cuda)
    total = torch.zeros((), device=cuda)
    for _ in range(2):                   # the first steps allocate the buffers and the side stream's memory
        total += next(steps)[1][0].mean()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _, (views,) in steps:
            total += views.mean()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total).item()
