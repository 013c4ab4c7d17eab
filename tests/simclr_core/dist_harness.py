"""One process of a 2-process gloo run that exercises every torch.distributed path of simclr_core.

Run as `python dist_harness.py RANK WORLD_SIZE INIT_FILE INPUTS OUTPUT`: it joins the group through a
FileStore, takes its share of the batches saved in INPUTS by the test, runs all checks, and saves what each
produced (losses, gradients, BN outputs and statistics) to OUTPUT for the test to compare with one process
on the whole batch. All checks run in one pair of processes, so torch is imported only twice per test run.
"""
from __future__ import annotations

import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

# (kind, semi_hard, normalize, NT-Xent memory path)
LOSS_CASES = [
    ("nt_xent", False, True, "kept"), ("nt_xent", False, False, "kept"), ("nt_xent", False, True, "recomputed"),
    ("dcl", False, True, "kept"), ("dcl", False, True, "recomputed"),
    ("nt_logistic", False, True, "kept"), ("nt_logistic", True, True, "kept"),
    ("margin_triplet", False, True, "kept"), ("margin_triplet", True, False, "kept"),
]
TEMPERATURE = 0.2


def make_inputs(world: int = 2, n: int = 4) -> dict:
    """Everything the run needs, for the whole batch (N = world * n images), float64."""
    g = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    batch = world * n
    return {
        "world": world, "n": n,
        "z1": r(batch, 6), "z2": r(batch, 6),
        "gather_x": r(world, 3, 2), "gather_w": r(world, world * 3, 2),
        "bn_x": [r(batch, 3, 4, 5) * 2 + 1, r(batch, 3, 4, 5) - 0.5],   # two steps, nonzero means
        "bn_upstream": r(batch, 3, 4, 5), "bn_weight": r(3), "bn_bias": r(3),
        "bn1d_x": r(batch, 5) * 3, "bn1d_upstream": r(batch, 5),
        "images": r(2, batch, 3, 6, 6),
    }


class ScaleOnlyBatchNorm1d(nn.BatchNorm1d):
    """BN with gamma and no beta, like the projection head's last layer (TF's center=False)."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.register_parameter("bias", None)


def small_net() -> nn.Module:
    """Encoder + projection head in miniature, with BatchNorm in both, float64, fixed non-trivial parameters."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 5, bias=False),
        ScaleOnlyBatchNorm1d(5),
    ).double()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                if m.bias is not None:
                    m.bias.uniform_(-0.5, 0.5)
    return net


def _run(rank: int, world: int, inputs: dict) -> dict:
    import simclr_core.losses as losses
    from simclr_core import distributed
    from simclr_core.losses import LOSSES, contrastive_stats, nt_xent
    from simclr_core.validation import ConfigError

    n = inputs["n"]
    mine = slice(rank * n, (rank + 1) * n)
    out: dict = {"facts": (distributed.is_distributed(), distributed.world_size(), distributed.rank())}

    # ---- losses: this rank's share of the batch --------------------------------------------------
    keep, chunk = losses._KEEP_ELEMENTS, losses._CHUNK_ELEMENTS
    for kind, semi_hard, normalize, path in LOSS_CASES:
        losses._KEEP_ELEMENTS, losses._CHUNK_ELEMENTS = (0, 20) if path == "recomputed" else (keep, chunk)
        z1 = inputs["z1"][mine].clone().requires_grad_()
        z2 = inputs["z2"][mine].clone().requires_grad_()
        loss = LOSSES[kind](z1, z2, temperature=TEMPERATURE, normalize=normalize, semi_hard=semi_hard)
        loss.backward()
        out[("loss", kind, semi_hard, normalize, path)] = (loss.detach(), z1.grad, z2.grad)
    losses._KEEP_ELEMENTS, losses._CHUNK_ELEMENTS = keep, chunk
    out["stats"] = contrastive_stats(inputs["z1"][mine], inputs["z2"][mine], temperature=TEMPERATURE)

    # ---- all_gather_with_grad: loss_r = <gathered, w_r> --------------------------------------------
    x = inputs["gather_x"][rank].clone().requires_grad_()
    gathered = distributed.all_gather_with_grad(x)
    (gathered * inputs["gather_w"][rank]).sum().backward()
    out["gather"] = (gathered.detach(), x.grad)

    # ---- GlobalBatchNorm: two training steps, then eval ------------------------------------------
    bn = distributed.GlobalBatchNorm(3).double()
    with torch.no_grad():
        bn.weight.copy_(inputs["bn_weight"])
        bn.bias.copy_(inputs["bn_bias"])
    xs = [x[mine].clone().requires_grad_() for x in inputs["bn_x"]]
    ys = [bn(x) for x in xs]
    (ys[0] * inputs["bn_upstream"][mine]).sum().backward()
    out["bn"] = {"y": ys[0].detach(), "x_grad": xs[0].grad, "weight_grad": bn.weight.grad,
                 "bias_grad": bn.bias.grad, "running_mean": bn.running_mean.clone(),
                 "running_var": bn.running_var.clone(), "batches": bn.num_batches_tracked.clone(),
                 "eval_y": bn.eval()(inputs["bn_x"][0][mine])}

    bn1d = distributed.GlobalBatchNorm(5, momentum=None).double()
    x1d = inputs["bn1d_x"][mine].clone().requires_grad_()
    y1d = bn1d(x1d)
    (y1d * inputs["bn1d_upstream"][mine]).sum().backward()
    bn1d(inputs["bn1d_x"][mine] * 2)
    out["bn1d"] = {"y": y1d.detach(), "x_grad": x1d.grad, "running_mean": bn1d.running_mean.clone(),
                   "running_var": bn1d.running_var.clone()}

    bn_half = distributed.GlobalBatchNorm(3)   # float32 parameters, bfloat16 input under autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_half = bn_half(inputs["bn_x"][0][mine].to(torch.bfloat16))
    out["bn_bf16"] = {"y": y_half.detach(), "running_mean": bn_half.running_mean.clone()}

    # ---- convert_to_global_bn: whole groups, groups of one, a size that does not divide -------------
    net = distributed.convert_to_global_bn(small_net())
    out["converted"] = [type(m).__name__ for m in net.modules()]
    out["converted_y"] = net(inputs["images"][0][mine]).detach()

    local_net = distributed.convert_to_global_bn(small_net(), group_size=1)
    out["group_of_one_y"] = local_net(inputs["images"][0][mine]).detach()
    out["group_of_one_sizes"] = [dist.get_world_size(m.process_group) for m in local_net.modules()
                                 if isinstance(m, distributed.GlobalBatchNorm)]
    try:
        distributed.convert_to_global_bn(small_net(), group_size=3)
        out["bad_group_size"] = None
    except ConfigError as exc:
        out["bad_group_size"] = str(exc)

    # ---- end to end: global BN net + NT-Xent under real DDP ----------------------------------------
    ddp = nn.parallel.DistributedDataParallel(distributed.convert_to_global_bn(small_net()))
    images = inputs["images"][:, mine]                                           # (2, n, 3, H, W)
    z = ddp(torch.cat([images[0], images[1]]))                                   # both views in one forward
    loss = nt_xent(*z.chunk(2), temperature=TEMPERATURE)
    loss.backward()
    out["ddp"] = (loss.detach(), {name: p.grad.clone() for name, p in ddp.module.named_parameters()})
    return out


def main(rank: int, world: int, init_file: str, inputs_file: str, output_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    try:
        out = _run(rank, world, torch.load(inputs_file))
    finally:
        dist.destroy_process_group()
    torch.save(out, output_file)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
