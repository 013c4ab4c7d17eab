"""Streamed images: encoded bytes read and decoded a few batches ahead of the step, never the whole split.

    batches = StreamedBatches(split, seed=0, local_batch=256, ..., device=device)
    for step, images in batches:          # images: list of (3, H_i, W_i) uint8 on `device`, each its own size
        views = augment.views_from_originals(images, generator)

A background thread reads batch k+1 (encoded.py) and decodes it while step k runs. On CUDA, JPEGs are decoded
in one batched nvjpeg call (torchvision.io.decode_jpeg on a list) on a side stream; the rest (PNG, CMYK, 12-bit,
a file cut short: jpeg_header.py reads which from the markers) and a batch nvjpeg refuses are decoded on the CPU
and copied over. On a CPU, a pool of threads decodes (torchvision's
decoders release the GIL: 2 threads decode 1.6x as fast as one on the 2-core reference machine).

An image that cannot be decoded is replaced in a training batch by another image of that batch (under that image's
own label, where the batch carries labels) and left out of an evaluation pass together with its label, with a warning
naming its file and row (the first time); train()'s final.json counts each such image once, however often it is
read. Once MIN_BAD_FOR_VERDICT images are bad and they are more than MAX_BAD_FRACTION of the distinct images seen,
the run stops with an error listing the first ones (bad_images.py: the policy the resident path shares). `EvalImages`
streams a split in order as evaluation wants it: each image resized so its shorter side is round(S x margin) (ImageNet:
256 for S = 224) and its centre S x S kept.
"""
from __future__ import annotations

import contextlib
import os
import queue
import threading
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from simclr_core.data.bad_images import (MAX_BAD_FRACTION, BadImages, BatchRecord, none_readable_error,
                                          reason)
from simclr_core.data.decode import decode_image, fit_square
from simclr_core.data.encoded import EncodedSplit
from simclr_core.data.jpeg_header import nvjpeg_decodable
from simclr_core.validation import ConfigError

# torchvision 0.29 deprecates its decoders (for torchcodec) with a warning per call; catch_warnings is not
# thread-safe, so the decoding threads rely on this one filter for that notice alone.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)
PREFETCH_BATCHES = 2


def default_decode_threads(device: torch.device) -> int:
    """Every core on a CPU run (decoding is the slowest part there; the threads share the cores with the
    step's, as DataLoader workers would); all but two beside a GPU, where nvjpeg decodes most images."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores if device.type == "cpu" else cores - 2)


class Decoder:
    """bytes -> (3, H, W) uint8 RGB on `device`; None for an image that cannot be decoded (with why)."""

    def __init__(self, device: torch.device, threads: int | None = None):
        self.device = device
        self.pool = ThreadPoolExecutor(threads or default_decode_threads(device), thread_name_prefix="decode")
        # nvjpeg writes its outputs on streams of its own without waiting for the caller's stream, so they are
        # allocated on a stream that runs nothing else: never in a block that the caller's stream still reads or
        # writes (torchvision's decode_jpeg allocates on the current stream; pytorch/vision#9606).
        self._nvjpeg_stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.gpu_decoded = 0        # images nvjpeg decoded
        self.gpu_refused = 0        # JPEGs sent to nvjpeg that it refused (their batch went to the CPU)

    def __call__(self, data: Sequence[bytes | Exception]) -> list[tuple[Tensor | None, str]]:
        results: list[tuple[Tensor | None, str]] = [(None, "")] * len(data)
        on_cpu = list(range(len(data)))
        if self.device.type == "cuda":
            on_cpu = self._decode_jpegs_on_gpu(data, results)
        for i, result in zip(on_cpu, self.pool.map(_decode_or_reason, [data[i] for i in on_cpu])):
            image, why = result
            if image is not None and self.device.type == "cuda":
                image = image.pin_memory().to(self.device, non_blocking=True)
            results[i] = (image, why)
        return results

    def _decode_jpegs_on_gpu(self, data: Sequence[bytes], results: list) -> list[int]:
        """Decode the JPEGs nvjpeg handles in one nvjpeg batch; returns the positions left for the CPU. The
        images are ready for the current stream, and the allocator knows that stream uses them."""
        from torchvision.io import ImageReadMode, decode_jpeg

        jpegs = [i for i, d in enumerate(data) if isinstance(d, bytes) and nvjpeg_decodable(d)]
        if not jpegs:
            return list(range(len(data)))
        encoded = [torch.frombuffer(bytearray(data[i]), dtype=torch.uint8) for i in jpegs]
        caller = torch.cuda.current_stream(self.device)
        try:
            with torch.cuda.stream(self._nvjpeg_stream):
                decoded = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError as exc:     # one image nvjpeg refuses fails the batch: the CPU decodes all of them
            if not self.gpu_refused:
                warnings.warn(f"nvjpeg refused a batch of {len(jpegs)} JPEGs ({reason(exc)}): the CPU decodes "
                              "such batches", stacklevel=2)
            self.gpu_refused += len(jpegs)
            return list(range(len(data)))
        caller.wait_stream(self._nvjpeg_stream)
        for i, image in zip(jpegs, decoded):
            image.record_stream(caller)
            results[i] = (image, "")
        self.gpu_decoded += len(jpegs)
        done = set(jpegs)
        return [i for i in range(len(data)) if i not in done]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _decode_or_reason(data: bytes | Exception) -> tuple[Tensor | None, str]:
    if isinstance(data, Exception):   # the bytes could not even be read
        return None, reason(data)
    try:
        return decode_image(data, None), ""
    except Exception as exc:          # PIL and torchvision raise several types for damaged bytes
        return None, reason(exc)


def put_unless_stopped(ahead: queue.Queue, item, stop: threading.Event) -> None:
    """ahead.put(item), giving up once `stop` is set (the consumer has gone: nobody will take it)."""
    while not stop.is_set():
        try:
            ahead.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def decoded_ahead(device: torch.device, threads: int | None, name: str,
                  produce: Callable[[Decoder], Iterator[Any]]) -> Iterator[Any]:
    """What `produce(decoder)` yields, made one item ahead on a thread named `name`, so that decoding the next
    batch overlaps the consumer's work on this one. An exception there is raised here; when the consumer stops
    early, the thread stops before its next item and the decoder is closed."""
    decoder = Decoder(device, threads)
    ahead: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    end = object()

    def run() -> None:
        try:
            items = produce(decoder)
            while not stop.is_set():
                item = next(items, end)
                put_unless_stopped(ahead, None if item is end else item, stop)
                if item is end:
                    return
        except BaseException as exc:
            put_unless_stopped(ahead, exc, stop)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)
        decoder.close()


def read_each(split: EncodedSplit, indices: np.ndarray) -> list[bytes | Exception]:
    """split.read(indices), or, where that fails, each image on its own: a failure (a missing file, a row with
    neither bytes nor path) takes that image's place, to be counted as unreadable."""
    try:
        return split.read(indices)
    except Exception:
        out: list[bytes | Exception] = []
        for index in indices:
            try:
                out.extend(split.read([int(index)]))
            except Exception as exc:
                out.append(exc)
        return out


REPLACED = "it is replaced by another image of its batch"
LEFT_OUT = "it is left out of the evaluation, with its label"


def decode_batch(split: EncodedSplit, indices: np.ndarray, decoder: Decoder, bad: BadImages,
                 view_side: int = 0, rows: list[int] | None = None, leave_out: bool = False) -> list[Tensor]:
    """Images `indices` of `split`, decoded; an unreadable one is replaced by a readable one of the batch, or,
    with `leave_out` (evaluation passes, where no image may count twice), left out. Images with a side shorter
    than `view_side` are counted in `bad.small`, each image once, as is each unreadable one (bad_images.py). `rows`,
    if given, receives the row each returned image was read from (a replacement's own row, so that labels follow
    the images)."""
    decoded = decoder(read_each(split, indices))
    bad.read(indices)
    good = [(image, int(index)) for index, (image, _) in zip(indices, decoded) if image is not None]
    if not good and not leave_out:
        bad.failed_reads += len(decoded)
        bad.rows.update((int(i), f"{split.where(int(i))} ({why})") for i, (_, why) in zip(indices, decoded))
        raise ConfigError(f"none of the {len(decoded)} images of a batch could be decoded, e.g. "
                          f"{split.where(int(indices[0]))} ({decoded[0][1]})")
    images = []
    for index, (image, why) in zip(indices, decoded):
        row = int(index)
        if image is None:
            bad.add(row, split.where(row), why, LEFT_OUT if leave_out else REPLACED)
            if leave_out:
                continue
            image, row = good[len(images) % len(good)]
        elif min(image.shape[-2:]) < view_side:
            bad.add_small(row, split.where(row), *image.shape[-2:], view_side)
        images.append(image)
        if rows is not None:
            rows.append(row)
    bad.check()
    return images


class StreamedBatches:
    """This process's decoded training batches for steps start_step..stop_step-1, read ahead on a thread.

    `bad` is what the reader met, read-ahead included: it warns and judges (the 1% verdict), continuing from
    `earlier` (what the run's earlier sessions trained on, over all processes: a resumed run is judged on all its
    images). trained(step) is this session's share of the batches before `step` alone, what a checkpoint at `step`
    may count: the batches read ahead of it are read again after a resume."""

    def __init__(self, split: EncodedSplit, *, seed: int, local_batch: int, rank: int, world: int,
                 steps_per_epoch: int, start_step: int, stop_step: int, device: torch.device,
                 threads: int | None = None, prefetch: int = PREFETCH_BATCHES, view_side: int = 0,
                 labels: bool = False, earlier: BadImages | None = None):
        self.split, self.seed, self.local_batch, self.view_side = split, seed, local_batch, view_side
        self.labels = labels      # yield (images, their labels as an int64 tensor on `device`) per step
        self.rank, self.world, self.steps_per_epoch = rank, world, steps_per_epoch
        self.start_step, self.stop_step, self.device = start_step, stop_step, device
        self.bad = BadImages() if earlier is None else earlier.copy()
        self._trained = BadImages()
        self._handed: deque[tuple[int, BatchRecord]] = deque()    # (step, its batch's record), handed out
        self._order, self._order_epoch = np.zeros(0, dtype=np.int64), -1
        self._decoder = Decoder(device, threads)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._thread = threading.Thread(target=self._produce, name="stream-batches", daemon=True)
        self._thread.start()

    def indices(self, step: int) -> np.ndarray:
        """The images this process reads at `step` (a pure function of seed, step, rank and world)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if self._order_epoch != epoch:
            self._order = self.split.epoch_order(self.seed, epoch, self.rank, self.world, self.local_batch)
            self._order_epoch = epoch
        return self._order[position * self.local_batch:(position + 1) * self.local_batch]

    def _produce(self) -> None:
        try:
            for step in range(self.start_step, self.stop_step):
                if self._stop.is_set():
                    return
                with torch.cuda.stream(self._stream) if self._stream is not None else contextlib.nullcontext():
                    rows: list[int] = []
                    indices, failed_before = self.indices(step), self.bad.failed_reads
                    images = decode_batch(self.split, indices, self._decoder, self.bad, self.view_side, rows)
                    record = self.bad.batch_record(indices, self.bad.failed_reads - failed_before)
                    if self.labels:
                        labels = torch.from_numpy(self.split.labels[rows]).to(self.device, torch.long,
                                                                              non_blocking=True)
                        images = (images, labels)
                    event = None
                    if self._stream is not None:
                        event = torch.cuda.Event()
                        event.record(self._stream)
                put_unless_stopped(self._queue, (step, images, event, record), self._stop)
        except BaseException as exc:            # handed to the training loop, which raises it
            put_unless_stopped(self._queue, exc, self._stop)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        for _ in range(self.start_step, self.stop_step):
            item = self._queue.get()
            if isinstance(item, BaseException):
                self.close()
                raise item
            step, images, event, record = item
            self._handed.append((step, record))
            if event is not None:       # the step's stream waits for the decode; the allocator learns the reuse
                current = torch.cuda.current_stream(self.device)
                current.wait_event(event)
                for image in (*images[0], images[1]) if self.labels else images:
                    image.record_stream(current)
            yield step, images

    def trained(self, through_step: int | None = None) -> BadImages:
        """This session's record of its batches before step `through_step` (all those handed out, if None). The
        consumer calls it once those steps are trained."""
        while self._handed and (through_step is None or self._handed[0][0] < through_step):
            self._trained.add_batch(self._handed.popleft()[1])
        return self._trained

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=60)     # it stops after the batch it is decoding
        self._decoder.close()

    def __enter__(self) -> "StreamedBatches":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EvalImages:
    """A split streamed in order for evaluation: uint8 batches (B, 3, S, S), each image's shorter side resized
    to round(S x margin) and its centre S x S kept; `labels` (every row's) as a tensor. Decoded anew at every pass.
    An unreadable image is left out of the pass, and batches(rows=) names the images a pass did yield, so that
    their labels are taken with them (evaluate/features.py's labelled_features): no image is scored under another's
    label or counted twice. Such images are counted in `bad`, each once: train() reports those of the training split
    (unreadable_images) and of the test split (unreadable_eval_images), and past 1% the evaluation stops, as
    training does."""

    def __init__(self, split: EncodedSplit, image_size: int, margin: float, device: torch.device,
                 threads: int | None = None, small_counted_as: str = "images_smaller_than_view"):
        self.split, self.image_size, self.margin, self.device = split, image_size, margin, device
        self.labels = torch.from_numpy(split.labels)
        self.num_classes = split.num_classes
        self.threads = threads
        self.bad = BadImages(small_counted_as=small_counted_as)

    def __len__(self) -> int:
        return len(self.split)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), 3, self.image_size, self.image_size)

    def batches(self, batch_size: int, rows: list[int] | None = None) -> Iterator[Tensor]:
        """The split's images in order, `batch_size` at a time less those that cannot be decoded; `rows`, if
        given, receives the row of each image yielded."""
        def squares(decoder: Decoder) -> Iterator[Tensor]:
            yielded = False
            for start in range(0, len(self), batch_size):
                indices = np.arange(start, min(start + batch_size, len(self)))
                images = decode_batch(self.split, indices, decoder, self.bad, rows=rows, leave_out=True)
                if images:
                    yielded = True
                    yield torch.stack([fit_square(x, self.image_size, self.margin) for x in images])
            if not yielded:
                raise none_readable_error(len(self), self.bad.first[0])

        return decoded_ahead(self.device, self.threads, "stream-eval", squares)

    def originals(self, rows: Tensor | np.ndarray, leave_out: bool = False) -> "LabelledOriginals":
        """Images `rows` of this split as whole decoded originals, for the evaluations that crop views (fine-tuning,
        the transformation probe) on the streamed path; with `leave_out`, an unreadable one is left out of its batch
        rather than replaced (LabelledOriginals)."""
        return LabelledOriginals(self.split, np.asarray(torch.as_tensor(rows).cpu(), dtype=np.int64),
                                 self.device, self.image_size, self.threads, self.bad, leave_out)


class LabelledOriginals:
    """Images `rows` of a split, each decoded whole as (3, H_i, W_i) uint8 on `device`, with their labels, read in
    the batches the caller names, one batch ahead on a thread: what fine-tuning and the transformation probe crop
    their views from when the run streams (as pretraining crops from the originals). An unreadable image is handled
    as in training: replaced by another image of its batch, which brings its own label (so a step keeps its batch
    size, which BatchNorm in train mode needs, and no image trains under another's label), counted in `bad`, and
    past 1% the run stops; images with a side shorter than `view_side` are counted. With `leave_out` (passes that
    only score or extract features, where no image may count twice), it is left out of its batch with its label,
    as in evaluation passes, and a batch left empty is skipped."""

    def __init__(self, split: EncodedSplit, rows: np.ndarray, device: torch.device, view_side: int,
                 threads: int | None = None, bad: BadImages | None = None, leave_out: bool = False):
        if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= len(split))):
            raise ConfigError(f"rows must index the {len(split)} images of {split.name!r}; got {rows.size} row(s) "
                              f"from {rows.min() if rows.size else '-'} to {rows.max() if rows.size else '-'}")
        self.split, self.rows, self.device, self.view_side = split, rows, device, view_side
        self.threads, self.leave_out = threads, leave_out
        self.bad = bad if bad is not None else BadImages()

    def __len__(self) -> int:
        return len(self.rows)

    def batches(self, index_batches: Sequence[Tensor]) -> Iterator[tuple[list[Tensor], Tensor]]:
        """For each tensor of positions into `rows`, the decoded originals of those images, in that order, and the
        label of each image returned (int64, on the CPU)."""
        def originals(decoder: Decoder) -> Iterator[tuple[list[Tensor], Tensor]]:
            asked = yielded = 0
            for positions in index_batches:
                wanted, read = self.rows[np.asarray(positions.cpu(), dtype=np.int64)], []
                images = decode_batch(self.split, wanted, decoder, self.bad, self.view_side, read, self.leave_out)
                asked += len(wanted)
                if images:
                    yielded += len(images)
                    yield images, torch.from_numpy(self.split.labels[read]).long()
            if asked and not yielded:        # every image was left out
                raise none_readable_error(asked, self.bad.first[0])

        return decoded_ahead(self.device, self.threads, "stream-originals", originals)


__all__ = ["BadImages", "Decoder", "EvalImages", "LabelledOriginals", "MAX_BAD_FRACTION", "StreamedBatches",
           "decode_batch", "default_decode_threads"]
