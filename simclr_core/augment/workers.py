"""Threads that augment a CPU batch's chunks side by side, each with one torch thread.

Chunks are independent once their parameters are drawn, so running them on T Python threads with one intra-op
thread each keeps every core busy for the whole call, where one chunk at a time on T intra-op threads leaves
cores idle in each kernel's serial parts and OpenMP barriers (at 224 px on 2 cores, measured: +19%). Kernels
release the GIL, so the threads overlap in their kernels.

torch's thread count is per OS thread once set, but ``torch.set_num_threads`` also stores a process-wide
default that every thread reads on its first parallel kernel. A worker therefore makes torch read the
default first, then sets its own count to 1, and the caller's default is restored before the pool is used:
the caller's threads, and threads started later, keep their count.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def chunk_pool() -> ThreadPoolExecutor | None:
    """A pool of ``torch.get_num_threads()`` single-threaded workers, made once per thread count and process;
    None when the caller runs torch on one thread (the chunks then run one after another)."""
    threads = torch.get_num_threads()
    if threads <= 1:
        return None
    with _lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = _start_pool(threads)
    return pool


def _start_pool(threads: int) -> ThreadPoolExecutor:
    ready = threading.Barrier(threads)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="simclr-augment",
                              initializer=_single_threaded, initargs=(ready,))
    # ThreadPoolExecutor starts a thread per submit while none is idle; the barrier keeps each one busy
    # until all exist, so every worker has run the initializer before the default is restored below.
    for future in [pool.submit(lambda: None) for _ in range(threads)]:
        future.result()
    torch.set_num_threads(threads)
    return pool


def _single_threaded(ready: threading.Barrier) -> None:
    torch.get_num_threads()               # this thread's lazy initialisation, from the process default
    torch.set_num_threads(1)
    ready.wait()


def _forget_pools_after_fork() -> None:
    # A forked child (e.g. a DataLoader worker) inherits the pools but not their threads.
    global _lock
    _lock = threading.Lock()
    _pools.clear()


os.register_at_fork(after_in_child=_forget_pools_after_fork)
