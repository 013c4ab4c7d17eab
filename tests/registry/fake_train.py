"""Training functions with the contract of simclr_core.train.train, for the registry's tests.

`counting_train` records each execution (pid) in run_dir/executions.log, sleeps $FAKE_TRAIN_SLEEP seconds
so that concurrent workers overlap, and writes final.json. The seed chooses misbehaviour:
seed 666 raises, seed 999 kills its own process (a hard crash), seed 777 is interrupted (Ctrl-C), seed 555 finds
the disk full when it writes its checkpoint, seed 444 asks the CPU allocator for more memory than any machine has,
seed 888 gets SIGKILL (as from the kernel's out-of-memory killer).
"""
from __future__ import annotations

import errno
import json
import os
import signal
import time
import warnings
import zipfile
from pathlib import Path

from simclr_core.atomic_files import atomic_write_text

FAIL_SEED = 666
CRASH_SEED = 999
INTERRUPT_SEED = 777
DISK_FULL_SEED = 555
OUT_OF_MEMORY_SEED = 444
KILLED_SEED = 888


def write_fake_checkpoint(path: Path, payload: bytes = b"state") -> None:
    """A file shaped as torch.save writes one (a zip archive), without importing torch.

    Written aside and renamed into place, as train() writes its checkpoints: a sweep driver polling the run
    from another thread must never see half a file (it would rightly call the run corrupt)."""
    path = Path(path)
    aside = path.with_name(f".{path.name}.writing")
    with zipfile.ZipFile(aside, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    os.replace(aside, path)


def write_fake_final(run_dir: Path, metrics: dict) -> None:
    """final.json written atomically, as train() writes it (see write_fake_checkpoint)."""
    atomic_write_text(Path(run_dir) / "final.json", json.dumps(metrics))


def counting_train(cfg, run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    resumed = (run_dir / "checkpoint.pt").exists()
    with open(run_dir / "executions.log", "a") as f:
        f.write(f"{os.getpid()} resumed={resumed}\n")
    time.sleep(float(os.environ.get("FAKE_TRAIN_SLEEP", "0")))
    if cfg.seed == FAIL_SEED:
        raise RuntimeError(f"boom in {run_dir.name}")
    if cfg.seed == CRASH_SEED:
        os._exit(3)
    if cfg.seed == INTERRUPT_SEED:
        raise KeyboardInterrupt
    if cfg.seed == OUT_OF_MEMORY_SEED:
        import torch

        torch.empty(1 << 50, dtype=torch.uint8)
    if cfg.seed == KILLED_SEED:
        os.kill(os.getpid(), signal.SIGKILL)
    if cfg.seed == DISK_FULL_SEED:       # as atomic_write_bytes reports it, raised from the OS's error
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise OSError(exc.errno, f"could not write {run_dir / 'checkpoint.pt'}: No space left on device") \
                from exc
    metrics = {"linear_top1": 40.0 + cfg.loss.temperature, "knn_top1": 30.0 + cfg.seed, "device": "fake",
               "resumed": resumed}
    write_fake_final(run_dir, metrics)
    return metrics


def checkpointing_train(cfg, run_dir: Path) -> dict:
    """counting_train that leaves a checkpoint, as train() does: a finished run can lend its pretraining."""
    metrics = counting_train(cfg, run_dir)          # "resumed": it found a checkpoint (its own or a donor's)
    if not metrics["resumed"]:
        write_fake_checkpoint(Path(run_dir) / "checkpoint.pt", Path(run_dir).name.encode())
    return metrics


def meeting_train(cfg, run_dir: Path) -> dict:
    """checkpointing_train once another run of the same experiment has started too (waiting up to 30 s):
    final.json's `met` says whether they trained at the same time."""
    run_dir = Path(run_dir)
    (run_dir / "started").touch()
    deadline = time.monotonic() + 30
    while len(list(run_dir.parent.glob("*/started"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    metrics = {**checkpointing_train(cfg, run_dir), "met": len(list(run_dir.parent.glob("*/started"))) >= 2}
    write_fake_final(run_dir, metrics)
    return metrics


def no_final_train(cfg, run_dir: Path) -> dict:
    """Returns metrics without writing final.json (the registry must still record the run as done)."""
    return {"linear_top1": 12.5}


def failing_train(cfg, run_dir: Path) -> dict:
    raise RuntimeError(f"boom in {Path(run_dir).name}")


# Configs the preflight below was asked about, in this process (the registry calls it before any run starts).
PREFLIGHT_CALLS: list = []


def _preflight(cfg) -> None:
    """Stands in for train()'s check_inputs: data under a path named `missing` is absent."""
    PREFLIGHT_CALLS.append(cfg)
    if "missing" in str(cfg.data.data_dir):
        raise FileNotFoundError(f"no data in {cfg.data.data_dir}")


def checked_train(cfg, run_dir: Path) -> dict:
    """counting_train with a preflight, as simclr_core.train.train has one."""
    return counting_train(cfg, run_dir)


checked_train.preflight = _preflight


def warning_train(cfg, run_dir: Path) -> dict:
    """counting_train that first warns as the data path does about a bad image (a message over two lines)."""
    warnings.warn(f"skipping an unreadable image: /data/{Path(run_dir).name}.jpg\n  (OSError: Truncated File Read)")
    return counting_train(cfg, run_dir)


def disk_filling_train(cfg, run_dir: Path) -> dict:
    """counting_train that first fills the folder $FAKE_FILL_DISK to its last block (file `filler`), as another
    program filling a shared disk mid-sweep does."""
    folder = os.environ.get("FAKE_FILL_DISK")
    if folder and not (Path(folder) / "filler").exists():
        with open(Path(folder) / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
    return counting_train(cfg, run_dir)


def thread_reporting_train(cfg, run_dir: Path) -> dict:
    """Reports the threads its process was given (OMP_NUM_THREADS and torch's)."""
    import torch

    metrics = {"omp_threads": float(os.environ.get("OMP_NUM_THREADS", "0")),
               "torch_threads": float(torch.get_num_threads())}
    write_fake_final(run_dir, metrics)
    return metrics
