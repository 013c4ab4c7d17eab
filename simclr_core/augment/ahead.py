"""Views made a step ahead: the augmentation of step k+1 runs while step k's forward and backward do.

train() makes each step's views with `views_ahead(batches, make_views, new_buffers, ahead=..., device=...)`:

    off   one set of view buffers; step k's views are made, then step k runs (on CUDA both on one stream, so
          the device does the augmentation and the step one after the other)
    on    two sets of buffers used in turn. The views of step k+1 are queued before step k, on a side CUDA
          stream, so the device can run them beside step k's kernels; step k waits (an event, not the host)
          for its own views only, and the views of step k+2 wait for step k, the last reader of their buffers.
          Without CUDA the same order runs on the host, one operation after the other (nothing to overlap).

Speed only: the views of a step are a pure function of (seed, step, rank) and the batch, so both ways train
the same numbers (tests/simclr_core/test_views_ahead.py), and `views_ahead` is not part of a run's id.
"auto" is "on" on CUDA, where the point is to fill the device's gaps during the step, and "off" on CPUs, where
nothing runs beside the step. Whether it pays on a GPU is measured by benchmarks/bench_step.py ("pipeline
ahead"), not assumed.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch

VIEWS_AHEAD_MODES: tuple[str, ...] = ("auto", "on", "off")


def resolve_views_ahead(mode: str, device: torch.device) -> str:
    """"on" or "off": what `mode` (one of VIEWS_AHEAD_MODES) means on `device`."""
    if mode != "auto":
        return mode
    return "on" if device.type == "cuda" else "off"


def views_ahead(batches: Iterator[tuple[int, Any]], make_views: Callable[[int, Any, Any], None],
                new_buffers: Callable[[], Any], *, ahead: bool, device: torch.device) -> Iterator[tuple[int, Any]]:
    """(step, buffers) for each (step, batch) of `batches`, after `make_views(step, batch, buffers)` filled
    `buffers` (what `new_buffers()` returns: the tensors make_views writes). The consumer must be done queuing
    its work on `buffers` when it asks for the next step. Closing this closes `batches`."""
    if not ahead:
        buffers = new_buffers()
        try:
            for step, batch in batches:
                make_views(step, batch, buffers)
                yield step, buffers
        finally:
            _close(batches)
        return
    yield from _ahead(batches, make_views, (new_buffers(), new_buffers()), device)


def _ahead(batches, make_views, buffers, device: torch.device):
    side = torch.cuda.Stream(device) if device.type == "cuda" else None
    main = torch.cuda.current_stream(device) if side is not None else None
    released = [None, None]     # main-stream event: the last step that read buffers[slot] is queued before it
    source = iter(batches)

    def launch(slot: int):
        """Read the next batch and queue its views into buffers[slot]: (step, slot, ready event) or None."""
        # On the side stream the batch's gather (or its decoded images' hand-over) and every temporary of the
        # augmentation belong to that stream too: only the buffers cross, guarded by the two events.
        with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
            item = next(source, None)
            if item is None:
                return None
            step, batch = item
            if released[slot] is not None:
                side.wait_event(released[slot])
            make_views(step, batch, buffers[slot])
            return step, slot, _recorded(side)

    try:
        pending = launch(0)
        while pending is not None:
            step, slot, ready = pending
            pending = launch(1 - slot)          # step k+1's views, queued before step k's own work
            if ready is not None:
                main.wait_event(ready)
            yield step, buffers[slot]
            released[slot] = _recorded(main)
    finally:
        if side is not None:
            main.wait_stream(side)   # nothing still writes into buffers the caller may free
        _close(batches)


def _close(batches) -> None:
    close = getattr(batches, "close", None)     # a generator (e.g. the streamed path's reader thread)
    if close is not None:
        close()


def _recorded(stream) -> torch.cuda.Event | None:
    if stream is None:
        return None
    event = torch.cuda.Event()
    event.record(stream)
    return event


__all__ = ["VIEWS_AHEAD_MODES", "resolve_views_ahead", "views_ahead"]
