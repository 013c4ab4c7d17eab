"""torch.compile of the pretraining model (simclr_core/compiling.py): the same training within bf16 tolerance."""
import json

import pytest
import torch

from simclr_core.checkpoint import load_checkpoint
from simclr_core.compiling import COMPILE_MODES, resolve_compile
from simclr_core.train import train
from simclr_core.validation import ConfigError

from test_train import losses, tiny


def test_auto_compiles_on_cuda_and_leaves_cpus_eager():
    assert resolve_compile("auto", torch.device("cuda")) == "default"
    assert resolve_compile("auto", torch.device("cpu")) == "off"
    for mode in COMPILE_MODES[1:]:
        assert resolve_compile(mode, torch.device("cpu")) == mode


def test_an_unknown_mode_is_refused_naming_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="compile.*'fast'.*reduce-overhead"):
        train(tiny(compile="fast"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_compiled_training_equals_eager_within_bf16_tolerance(tmp_path):
    """Inductor on this CPU stands in for the GPU's: the graph dynamo captures (model, autocast, channels_last)
    is the same, only the generated kernels differ. bf16 rounding compounds over the steps (measured: 1e-4)."""
    from torch._dynamo.utils import counters

    eager = train(tiny(max_steps=4, compile="off"), tmp_path / "eager")
    counters.clear()
    compiled = train(tiny(max_steps=4, compile="default"), tmp_path / "compiled")
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]   # one graph, compiled whole
    assert eager["compile"] == "off" and compiled["compile"] == "default"
    assert json.loads((tmp_path / "compiled" / "final.json").read_text())["compile"] == "default"
    (e_steps, e_loss), (c_steps, c_loss) = (zip(*losses(tmp_path / name)) for name in ("eager", "compiled"))
    assert c_steps == e_steps == (1, 2, 3, 4)
    torch.testing.assert_close(torch.tensor(c_loss), torch.tensor(e_loss), rtol=5e-3, atol=0)
    assert abs(compiled["knn_top1"] - eager["knn_top1"]) <= 5
    # The checkpoint names the eager model's parameters, so either mode resumes it.
    a, b = load_checkpoint(tmp_path / "eager")["model"], load_checkpoint(tmp_path / "compiled")["model"]
    assert a.keys() == b.keys()
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(b[key], a[key], rtol=0.1, atol=2e-2)


@pytest.mark.distributed
@pytest.mark.slow
def test_compiled_model_in_two_processes_equals_one_process_on_the_whole_batch(tmp_path):
    """DistributedDataParallel around the compiled model, global BatchNorm and gathered negatives: the first
    step's loss is still one process's on the union of both ranks' views."""
    from first_step_reference import reference_first_step_loss
    from test_train import train_in_two_processes

    cfg = tiny(max_steps=2, precision="no", compile="default", **{"encoder.global_bn": True})
    results = train_in_two_processes(cfg, tmp_path / "run", tmp_path)
    assert all(r["metrics"]["compile"] == "default" for r in results)
    logged = losses(tmp_path / "run")[0][1]
    assert logged == pytest.approx(reference_first_step_loss(cfg, world=2, global_bn=True), rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("mode", ["off", "default"])
def test_a_cuda_training_step_waits_on_no_host_sync(mode):
    """The resident pipeline's step: gather the batch from uint8 images on the device, augment both views into
    the reused views tensor, then the model (eager or compiled) under autocast, NT-Xent, the lr schedule and
    LARS. Once the first steps have compiled and made the optimiser's state, a step only queues device work."""
    from simclr_core.augment import build_augmentation
    from simclr_core.compiling import compile_model
    from simclr_core.config import RunConfig
    from simclr_core.losses import compute_loss
    from simclr_core.models import build_model
    from simclr_core.optim import build_optimizer, set_lr, warmup_cosine

    cfg = RunConfig().with_overrides({"encoder.width": 0.25, "batch_size": 16})
    cuda = torch.device("cuda")
    model = compile_model(build_model(cfg.encoder, cfg.head, 32).to(cuda, memory_format=torch.channels_last), mode)
    optimizer = build_optimizer(cfg.optim, model, cfg.peak_lr())
    views = torch.empty((32, 3, 32, 32), device=cuda, memory_format=torch.channels_last)
    augment = build_augmentation(cfg.augment, 32, (0.5,) * 3, (0.25,) * 3)
    pool = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device=cuda)
    generator = torch.Generator()

    def step(index: int) -> None:
        generator.manual_seed(index)
        rows = torch.randperm(len(pool), generator=generator)[:16].to(cuda, non_blocking=True)
        augment(pool.index_select(0, rows), generator, out=views)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, z = model(views)
        z1, z2 = z.float().chunk(2)
        loss = compute_loss(cfg.loss, z1, z2)
        set_lr(optimizer, warmup_cosine(index, 100, 10, cfg.peak_lr()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(0)
    step(1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step(2)
    finally:
        torch.cuda.set_sync_debug_mode("default")
