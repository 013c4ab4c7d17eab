import multiprocessing
import threading

import torch

from simclr_core.augment.workers import chunk_pool


def with_threads(count, fn):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        return fn()
    finally:
        torch.set_num_threads(previous)


def thread_count_of_a_new_thread() -> int:
    counts = []
    thread = threading.Thread(target=lambda: counts.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return counts[0]


def test_one_torch_thread_means_no_pool():
    assert with_threads(1, chunk_pool) is None


def test_workers_run_one_torch_thread_each_and_leave_everyone_elses_count_alone():
    def check():
        pool = chunk_pool()
        assert pool is chunk_pool()                                          # made once per count
        counts = [pool.submit(torch.get_num_threads) for _ in range(8)]
        assert [c.result() for c in counts] == [1] * 8
        assert torch.get_num_threads() == 2                                  # the caller's
        assert thread_count_of_a_new_thread() == 2                           # the process default
        assert pool._max_workers == 2
    with_threads(2, check)


def test_a_pool_made_for_three_threads_has_three_workers():
    def check():
        pool = chunk_pool()
        barrier = threading.Barrier(3, timeout=30)      # passes only if three tasks run at the same time
        assert all(f.result(timeout=60) is not None for f in [pool.submit(barrier.wait) for _ in range(3)])
        assert torch.get_num_threads() == 3
    with_threads(3, check)


def _use_pool_in_child(queue):
    queue.put(with_threads(2, lambda: chunk_pool().submit(torch.get_num_threads).result(timeout=30)))


def test_a_forked_child_gets_a_pool_of_its_own():
    with_threads(2, chunk_pool)                                              # the parent's pool exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_use_pool_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert queue.get(timeout=1) == 1
