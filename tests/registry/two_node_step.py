"""One task of a multi-node SLURM job (srun): joins the job's process group through registry/slurm_job.py's
rendezvous, then takes one DDP step of dist_harness.small_net (global BatchNorm, NT-Xent over gathered
negatives) on its share of the batch, and saves what it saw for tests/registry/test_slurm_two_nodes.py.

    SUBMITIT_EXECUTOR=slurm srun python two_node_step.py INPUTS OUTDIR      # OUTDIR/rank{SLURM_PROCID}.pt
"""
from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

HARNESS = Path(__file__).resolve().parents[1] / "simclr_core" / "dist_harness.py"


def main(inputs_file: str, out_dir: str) -> None:
    import submitit

    from registry.slurm_job import _join_process_group
    from simclr_core import distributed
    from simclr_core.losses import nt_xent

    spec = importlib.util.spec_from_file_location("dist_harness", HARNESS)
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)

    torch.set_num_threads(1)
    env = submitit.JobEnvironment()
    _join_process_group(env)
    try:
        inputs = torch.load(inputs_file)
        rank, n = dist.get_rank(), inputs["n"]
        ddp = nn.parallel.DistributedDataParallel(distributed.convert_to_global_bn(harness.small_net()))
        images = inputs["images"][:, rank * n:(rank + 1) * n]
        z = ddp(torch.cat([images[0], images[1]]))
        loss = nt_xent(*z.chunk(2), temperature=harness.TEMPERATURE)
        loss.backward()
        out = {"rank": rank, "world": dist.get_world_size(), "host": socket.gethostname(),
               "local_rank": int(os.environ["LOCAL_RANK"]), "master_addr": os.environ["MASTER_ADDR"],
               "loss": loss.detach(), "grads": {k: p.grad.clone() for k, p in ddp.module.named_parameters()}}
    finally:
        dist.destroy_process_group()
    torch.save(out, Path(out_dir) / f"rank{out['rank']}.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
