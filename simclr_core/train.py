"""SimCLR pretraining: `train(cfg, run_dir) -> metrics`, the one function every launcher calls.

`cfg.method="supervised"` trains the paper's supervised baselines through the same loop instead: one view per
image, a linear classifier on h, cross-entropy on the labels (models/supervised.py).

Runs unchanged on a CPU, one GPU or many processes (Accelerate: DDP with NCCL on GPUs, gloo on CPUs).
Every random draw is a pure function of (seed, step, rank): the data order of an epoch comes from
(seed, epoch) and the augmentation of a step from (seed, step, rank), so a run resumed from its last
checkpoint continues exactly as one that never stopped.

Files written under run_dir (by the main process):
  metrics.jsonl   one JSON object per logged step / evaluation
  checkpoint.pt   model, optimizer and step (and the streamed path's data counts, up to that step), replaced
                  atomically every `checkpoint_every_steps`, and at the logging step where a stop is requested
                  (stop_request.py: a SLURM job's time-limit warning)
  final.json      the final evaluation metrics plus wall clock, throughput and device
  evaluation-partial.json  the metrics of each evaluation protocol as it finishes, and of each fine-tuning of one
                  (finetune, transfer), until final.json is written: a run killed during its evaluation does not run
                  the finished ones again (partial_evaluation.py)
  finetune-progress.pt  the state of the fine-tuning running, every few minutes at an epoch end, until its metrics
                  are saved: a run killed during it goes on from there (finetune_progress.py)
"""
from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from simclr_core import cpu_cache, stop_request
from simclr_core.augment import build_augmentation, build_local_views, native
from simclr_core.augment.ahead import resolve_views_ahead, views_ahead
from simclr_core.atomic_files import atomic_write_bytes, remove_leftover_temps
from simclr_core.checkpoint import (CHECKPOINT_NAME, atomic_write_json, load_checkpoint, require_same_training,
                                    save_checkpoint)
from simclr_core.cgroups import fit_torch_threads
from simclr_core.compiling import compile_model, resolve_compile
from simclr_core.config import RunConfig
from simclr_core.data.feed import (Feed, data_identity_later, open_feed, require_batch_fits, require_data,
                                   test_split_classes, train_split_size)
from simclr_core.data.hf_progress import progress_bars_hidden
from simclr_core.data_counts import counts_to_keep, keep_evaluation_finds, restore_counts, run_stats
from simclr_core.distributed import convert_to_global_bn
from simclr_core.evaluate.protocols import (PROTOCOLS, require_classes, require_protocol_data, require_test_labels,
                                           run_protocols)
from simclr_core.losses import compute_multicrop_loss, contrastive_stats
from simclr_core.models import build_model, build_supervised_model, fused_bn
from simclr_core.models.encoders import stem_cost_note
from simclr_core.native_build import LazyExtension, start_builds
from simclr_core.optim import build_optimizer, set_lr, warmup_cosine
from simclr_core.finetune_progress import PROGRESS_NAME
from simclr_core.partial_evaluation import PARTIAL_NAME, PartialEvaluation, evaluation_key
from simclr_core.precision import autocast_dtype, resolve_precision
from simclr_core.seeding import step_seed
from simclr_core.trackers import require_installed as require_trackers_installed
from simclr_core.validation import ConfigError

METRICS_NAME = "metrics.jsonl"
FINAL_NAME = "final.json"


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last checkpoint on disk is from before it happened."""


def train(cfg: RunConfig, run_dir: str | Path) -> dict[str, Any]:
    """Pretrain `cfg` in `run_dir` (resuming from its checkpoint) and return the final metrics."""
    try:
        return _train(cfg, Path(run_dir))
    finally:
        # The CPU block cache lives as long as the run: its idle blocks go back to the system when the run
        # ends, however it ends (the next run may use other sizes; see cpu_cache.py).
        cpu_cache.release_idle()


def check_inputs(cfg: RunConfig) -> None:
    """What can be known wrong with `cfg` before its run starts: a bad value (ConfigError) or data it reads that
    is missing (DataNotFoundError, saying where it looked and how to provide it), a batch larger than the
    training split, or one class to classify (counted without decoding where it is local or cached). Launchers
    call it as `train.preflight`, once per distinct config, before they start any run; nothing is decoded.
    Hugging Face's progress bars are hidden meanwhile (simclr_core/data/hf_progress.py)."""
    cfg.validate()
    require_trackers_installed(cfg.trackers)
    with progress_bars_hidden(f"checking the data of {cfg.data.dataset!r} before any run starts"):
        train_index = require_data(cfg.data, need_test=False).get("train")
        train_images, classes = train_split_size(cfg.data, train_index)
        if train_images is not None:
            require_batch_fits(cfg.batch_size, train_images, cfg.data.dataset)
        if classes is not None:           # before the test split: images without labels may come without one
            require_classes(cfg, classes, f"the training split of {cfg.data.dataset!r}")
        if needs_test_split(cfg):
            test_index = require_data(cfg.data, need_test=True, train_index=train_index).get("test")
            require_test_labels(cfg, test_split_classes(cfg.data, test_index),
                                f"the test split of {cfg.data.dataset!r}")
        require_protocol_data(cfg)


train.preflight = check_inputs


def needs_test_split(cfg: RunConfig) -> bool:
    """Whether the run evaluates on its test split (an evaluation protocol that reads the run's own splits, or the
    kNN monitor); transfer evaluation alone reads datasets of its own."""
    return bool(cfg.eval.knn_every_epochs or any(PROTOCOLS[name].reads_own_splits for name in cfg.eval.protocols))


def native_extensions(cfg: RunConfig, world: int) -> list[LazyExtension]:
    """The C++ extensions a CPU run of `cfg` in `world` processes will ask for: the block cache (on Linux) at
    once, the augmentation kernels at its first views, and the fused BatchNorm at its first forward where it
    applies (channels_last, not compiled, no global BatchNorm across processes: see fused_bn.py)."""
    needed = [cpu_cache.extension] if sys.platform.startswith("linux") else []
    needed.append(native.kernels)
    if (cfg.channels_last and resolve_compile(cfg.compile, torch.device("cpu")) == "off"
            and not (cfg.encoder.global_bn and world > 1)):
        needed.append(fused_bn.kernels)
    return needed


def _train(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    cfg.validate()
    require_trackers_installed(cfg.trackers)
    require_protocol_data(cfg)   # e.g. a transfer dataset: missing data stops the run before any step
    run_dir.mkdir(parents=True, exist_ok=True)
    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type == "cpu":
        fit_torch_threads()   # no more threads than a CPU quota (a container's) lets run at once: see cgroups.py
    mixed_precision = resolve_precision(cfg.precision, torch.device(device_type))
    _forget_previous_accelerator()
    accelerator = Accelerator(mixed_precision=mixed_precision, cpu=device_type == "cpu",
                              log_with=list(cfg.trackers) or None, project_dir=str(run_dir))
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    if accelerator.is_main_process:     # the partial files of writes that killed an earlier attempt
        for name in (CHECKPOINT_NAME, FINAL_NAME, METRICS_NAME, PARTIAL_NAME, PROGRESS_NAME):
            remove_leftover_temps(run_dir / name)
    if cfg.batch_size % world:
        raise ConfigError(f"batch_size={cfg.batch_size} must be divisible by the {world} processes")
    local_batch = cfg.batch_size // world
    if device_type == "cpu":
        # side by side: install() waits for the block cache's; the others go on while the data is decoded
        start_builds(native_extensions(cfg, world))
        cpu_cache.install()   # each step reuses the last step's freed activations: see cpu_cache.py

    # ---- data ------------------------------------------------------------------------------------
    feed = open_feed(cfg.data, need_test=needs_test_split(cfg), device=device)
    # Which images these are (final.json): the main process's record, hashed beside the training.
    identity_later = data_identity_later(cfg.data) if accelerator.is_main_process else None
    require_batch_fits(cfg.batch_size, feed.num_train, cfg.data.dataset)
    require_classes(cfg, feed.num_classes, f"the training split of {cfg.data.dataset!r} ({feed.source})")
    require_test_labels(cfg, feed.test_classes, f"the test split of {cfg.data.dataset!r} ({feed.test_source})")
    image_size = feed.image_size
    costly_stem = stem_cost_note(cfg.encoder.stem, image_size)
    if costly_stem and accelerator.is_main_process:
        warnings.warn(costly_stem, stacklevel=2)
    augment = build_augmentation(cfg.augment, image_size, feed.mean, feed.std)
    augment_small = build_local_views(cfg.augment, image_size, feed.mean, feed.std)
    supervised = cfg.method == "supervised"
    steps_per_epoch = feed.num_train // cfg.batch_size
    total_steps = total_steps_for(cfg, feed.num_train)
    stop_step = min(total_steps, cfg.max_steps or total_steps)
    warmup_steps = min(total_steps, round(cfg.optim.warmup_epochs * steps_per_epoch))
    peak_lr = cfg.peak_lr()

    # ---- model: encoder f(.) + projection head g(.) (supervised: + a linear classifier) ----------------
    torch.manual_seed(cfg.seed)
    if supervised:
        model = build_supervised_model(cfg.encoder, feed.num_classes, image_size)
    else:
        model = build_model(cfg.encoder, cfg.head, image_size)
    if world > 1 and cfg.encoder.global_bn:
        model = convert_to_global_bn(model.to(device), group_size=cfg.encoder.global_bn_group_size)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)

    # ---- optimizer (LARS by default) + schedule -----------------------------------------------------
    optimizer = build_optimizer(cfg.optim, model, peak_lr)

    # ---- resume (no-op on a fresh run) -------------------------------------------------------------
    start_step, earlier_seconds, earlier_device_seconds, processes_seen = 0, 0.0, 0.0, [world]
    device_name = _device_name(device)
    # The device models that trained the run, in order: a GPU's name, or "cpu" (its thread count, which a resume by
    # another process count changes, is how it ran, not another device).
    device_model = device_name if device.type == "cuda" else "cpu"
    devices_seen = [device_model]
    counts_from_step = None      # where a checkpoint kept no data counts: the step final.json's start from
    # torch.load refuses Accelerate's "cpu:0"; tensors then follow the model with load_state_dict.
    checkpoint = load_checkpoint(run_dir, map_location=device if device.type != "cpu" else "cpu")
    if checkpoint is not None:
        require_same_training(run_dir, checkpoint, cfg)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_step = checkpoint["step"]
        earlier_seconds = float(checkpoint.get("pretrain_seconds", 0.0))   # earlier sessions' training time
        last_processes = checkpoint.get("processes", world)
        # Seconds x processes of each earlier session (exact when sessions ran with different process counts).
        earlier_device_seconds = float(checkpoint.get("pretrain_device_seconds", earlier_seconds * last_processes))
        trains_on = start_step < stop_step        # else it only evaluates (e.g. another run's finished pretraining)
        seen = set(checkpoint.get("processes_seen", [last_processes]))
        processes_seen = sorted(seen | {world} if trains_on else seen)
        if trains_on and last_processes != world and accelerator.is_main_process:
            warnings.warn(_other_processes_message(run_dir, start_step, last_processes, world), stacklevel=2)
        # A checkpoint written before devices were kept: its device is unknown, taken as this one.
        earlier_devices = list(checkpoint.get("devices_seen", [device_model]))
        devices_seen = earlier_devices + ([device_model] if device_model not in earlier_devices else [])
        if device_model not in earlier_devices and accelerator.is_main_process:
            warnings.warn(_other_device_message(run_dir, start_step, earlier_devices, device_model), stacklevel=2)
        torch.set_rng_state(checkpoint["torch_rng"].cpu())
        counts_from_step = restore_counts(accelerator, feed, checkpoint, run_dir / CHECKPOINT_NAME)
    if accelerator.is_main_process:
        # Without a checkpoint this drops every row: an attempt killed before its first checkpoint trains again
        # from step 0, and its rows would appear twice in the curve.
        _truncate_metrics(run_dir / METRICS_NAME, start_step)
    model, optimizer = accelerator.prepare(model, optimizer)
    compile_mode = resolve_compile(cfg.compile, device)
    model = compile_model(model, compile_mode)     # in place: checkpoints and evaluation see the same module
    if checkpoint is not None and checkpoint.get("scaler") is not None and accelerator.scaler is not None:
        accelerator.scaler.load_state_dict(checkpoint["scaler"])
    if cfg.trackers:
        accelerator.init_trackers(run_dir.name, config=_tracker_config(cfg))

    # ---- loop --------------------------------------------------------------------------------------
    # Augmentation parameters are drawn on the host and copied without a sync (see simclr_core.augment); with
    # views_ahead on, step k+1's views are made while step k runs (simclr_core/augment/ahead.py).
    generator = torch.Generator()
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)
    asked_to_stop = torch.zeros((), device=device)

    def new_view_buffers() -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Both views of a step in one tensor, in the model's memory format: the model reads all 2N views in
        one forward pass (as the official code does, so BatchNorm sees them all); then multi-crop's small
        views, if any (small view k of image i in row k * local_batch + i); then, for a supervised run, the
        images' labels (and its views tensor holds view 1 alone). Reused step after step: the autograd graph
        that holds them is freed by the step's backward, before the buffers are written again."""
        views = torch.empty(((1 if supervised else 2) * local_batch, 3, image_size, image_size), device=device,
                            memory_format=memory_format)
        small = None if augment_small is None else torch.empty(
            (cfg.augment.local_crops * local_batch, 3, augment_small.image_size, augment_small.image_size),
            device=device, memory_format=memory_format)
        labels = torch.empty(local_batch, dtype=torch.long, device=device) if supervised else None
        return views, small, labels

    def make_views(step: int, batch, buffers) -> None:
        views, small, labels = buffers
        if labels is not None:
            batch, batch_labels = batch
            labels.copy_(batch_labels, non_blocking=True)
        generator.manual_seed(step_seed(cfg.seed, step, rank))
        if labels is not None:
            # One view per image, as the paper's supervised baselines train: the first of the two views a
            # SimCLR step draws (the same draws: both methods see the same crops), view 2 never made.
            feed.first_views(augment, batch, generator, out=views)
        else:
            feed.views(augment, batch, generator, out=views)
        if small is not None:
            feed.views(augment_small, batch, generator, out=small)

    last_finite_step, last_checkpoint_step = start_step, start_step
    remedy = "Lower the learning rate" + ("" if supervised else " or raise the temperature")
    log_loss = torch.zeros((), device=device)
    log_count, log_clock = 0, time.perf_counter()
    train_clock, train_images = time.perf_counter(), 0
    bar = tqdm(total=stop_step, initial=start_step, disable=not accelerator.is_main_process,
               desc=f"pretrain {run_dir.name}", unit="step", dynamic_ncols=True)
    model.train()
    batches = feed.batches(seed=cfg.seed, rank=rank, world=world, local_batch=local_batch,
                           steps_per_epoch=steps_per_epoch, start_step=start_step, stop_step=stop_step, device=device,
                           labels=supervised)
    ahead = resolve_views_ahead(cfg.views_ahead, device)
    steps = views_ahead(batches, make_views, new_view_buffers, ahead=ahead == "on", device=device)
    stop_request.listen()
    try:
        for step, (views, small_views, labels) in steps:
            if supervised:
                _, logits = model(views)
                loss = F.cross_entropy(logits.float(), labels)
            else:
                _, z = model(views if small_views is None else (views, small_views))
                z1, z2, *small = z.float().split(local_batch)
                loss = compute_multicrop_loss(cfg.loss, z1, z2, small)

            set_lr(optimizer, warmup_cosine(step, total_steps, warmup_steps, peak_lr))
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()

            nonfinite |= ~torch.isfinite(loss.detach())
            log_loss += loss.detach()
            log_count += 1
            train_images += cfg.batch_size
            done = step + 1
            bar.update(1)
            is_log = done % cfg.log_every_steps == 0 or done == stop_step
            is_ckpt = done % cfg.checkpoint_every_steps == 0 or done == stop_step
            if is_log or is_ckpt:
                if bool(nonfinite):
                    kept = (f"the last good checkpoint (step {last_checkpoint_step}) is kept in {run_dir}"
                            if last_checkpoint_step else f"no checkpoint was written to {run_dir}")
                    raise NonFiniteLossError(
                        f"non-finite loss between steps {last_finite_step + 1} and {done}; {kept}. "
                        f"{remedy}.")
                last_finite_step = done
            stop_now = False
            if is_log:
                # A stop request rides on the reduction the logged loss needs anyway: any process may have seen it.
                asked_to_stop.fill_(float(stop_request.requested()))
                reduced = accelerator.reduce(torch.stack((log_loss, asked_to_stop)), reduction="mean")
                loss_over_steps, asked_share = reduced.tolist()
                mean_loss, stop_now = loss_over_steps / log_count, asked_share > 0
                elapsed = time.perf_counter() - log_clock
                row = {"step": done, "epoch": done / steps_per_epoch, "loss": mean_loss,
                       "lr": optimizer.param_groups[0]["lr"],
                       **(_batch_accuracy(logits, labels) if supervised else _contrastive_stats(cfg, z1, z2)),
                       "images_per_s": log_count * cfg.batch_size / max(elapsed, 1e-9)}
                _log(accelerator, run_dir, row)
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{row['lr']:.3g}")
                log_loss.zero_()
                log_count, log_clock = 0, time.perf_counter()
            # The last step's kNN comes from the final evaluation below when that includes kNN: not run twice.
            final_has_knn = done == stop_step and "knn" in cfg.eval.protocols
            knn_period = cfg.eval.knn_every_epochs * steps_per_epoch
            if cfg.eval.knn_every_epochs and done % knn_period == 0 and not final_has_knn:
                knn = _evaluate_apart(accelerator, model, cfg, feed, mixed_precision, ("knn",))
                _log(accelerator, run_dir, {"step": done, "epoch": done / steps_per_epoch, **knn})
                model.train()
            if is_ckpt or stop_now:
                # "Last good" means finite weights and BatchNorm statistics too: a finite loss can leave an
                # infinite running_var behind, and resuming from it would only fail later.
                bad = _nonfinite_state(accelerator, model)
                if bad:
                    kept = (f"the last good checkpoint (step {last_checkpoint_step}) is kept in {run_dir}"
                            if last_checkpoint_step else f"no checkpoint was written to {run_dir}")
                    raise NonFiniteLossError(
                        f"non-finite values in {bad} at step {done} (the loss was finite); {kept}. "
                        f"{remedy}.")
                session_seconds = time.perf_counter() - train_clock
                _save(accelerator, run_dir, model, optimizer, done, cfg, earlier_seconds + session_seconds,
                      earlier_device_seconds + session_seconds * world, processes_seen, devices_seen,
                      counts_to_keep(accelerator, feed, done))
                last_checkpoint_step = done
            if stop_now:
                raise stop_request.StoppedAtCheckpoint(done)
    finally:
        unanswered = stop_request.stop_listening()
        steps.close()        # stops the streamed path's reader, however the loop ends
        batches.close()      # (in case the loop never started)
        bar.close()          # ends its line: what is printed next (Ctrl-C's message, an error) starts a line of its own
    if unanswered and accelerator.is_main_process:
        # Asked after the last logging step: the last step's checkpoint is on disk; stop before the evaluation (the
        # main process alone, as a signal during the evaluation stops it: the others stop when it leaves).
        raise stop_request.StoppedAtCheckpoint(last_checkpoint_step)
    train_seconds = time.perf_counter() - train_clock

    # ---- final evaluation -> final.json -------------------------------------------------------------
    eval_clock = time.perf_counter()
    partial, label = None, f"evaluate {run_dir.name}"
    if accelerator.is_main_process and cfg.eval.protocols:
        partial = PartialEvaluation(run_dir, evaluation_key(accelerator.unwrap_model(model), stop_step, cfg, device),
                                    label=label)
        keep_evaluation_finds(feed, partial)
        partial.finds_so_far = feed.evaluation_finds
    metrics = _evaluate_apart(accelerator, model, cfg, feed, mixed_precision, cfg.eval.protocols,
                              progress=label, partial=partial)
    steps_run = stop_step - start_step
    metrics.update({
        "steps": stop_step, "total_steps": total_steps, "epochs_done": stop_step / steps_per_epoch,
        "pretrain_seconds_this_session": train_seconds,
        # All sessions of this run (a resumed run adds the time its checkpoint recorded) and the final evaluation
        # (with an interrupted attempt's time in the protocols and parts it finished, and in the one this attempt
        # went on with up to its progress's last save: only what it ran after that is lost); the report's
        # device-hours are pretrain_device_seconds (each session's seconds x its processes) plus eval_seconds x
        # processes.
        "pretrain_seconds": earlier_seconds + train_seconds,
        "pretrain_device_seconds": earlier_device_seconds + train_seconds * world,
        "eval_seconds": time.perf_counter() - eval_clock + (partial.kept_seconds if partial else 0.0),
        "images_per_s": train_images / train_seconds if steps_run else None,
        "device": device_name, "processes": world, "mixed_precision": mixed_precision,
        **({"processes_seen": processes_seen} if len(processes_seen) > 1 else {}),
        **({"devices_seen": devices_seen} if len(devices_seen) > 1 else {}),
        "compile": compile_mode, "views_ahead": ahead,
        **run_stats(accelerator, feed),
        **({"data_counts_from_step": counts_from_step} if counts_from_step is not None else {}),
        **({"data_identity": identity} if identity_later and (identity := identity_later()) else {}),
    })
    if accelerator.is_main_process:
        atomic_write_json(run_dir / FINAL_NAME, metrics)
        if partial is not None:
            partial.remove()
    if cfg.trackers:
        accelerator.end_training()
    accelerator.wait_for_everyone()
    return metrics


# ---- pieces of the loop ---------------------------------------------------------------------------
def _forget_previous_accelerator() -> None:
    """Let one process call train() several times (sweeps, tests) with different precisions.

    Accelerate keeps its settings in a process-wide singleton and refuses a second Accelerator with other
    settings; the process group (PartialState) is kept, only the per-run settings are dropped.
    """
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def _contrastive_stats(cfg: RunConfig, z1: torch.Tensor, z2: torch.Tensor) -> dict[str, float]:
    stats = contrastive_stats(z1.detach(), z2.detach(), temperature=cfg.loss.temperature,
                              normalize=cfg.loss.normalize)
    return {"contrastive_acc": float(stats["contrastive_acc"]), "entropy": float(stats["entropy"])}


def _batch_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """A supervised run's top-1 on its last batch (this process's share, augmented views), in percent."""
    return {"train_top1": 100.0 * float((logits.detach().argmax(1) == labels).float().mean())}


def _nonfinite_state(accelerator: Accelerator, model) -> str:
    """Names of the floating-point parameters and buffers holding NaN or inf on any process ("" if none)."""
    named = [(n, t) for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_floating_point()]
    flags = torch.stack([~torch.isfinite(t).all() for _, t in named])
    if accelerator.num_processes > 1:    # every process must take the same branch
        flags = accelerator.reduce(flags.int(), reduction="sum") > 0
    if not bool(flags.any()):
        return ""
    bad = [name.removeprefix("module.") for (name, _), flag in zip(named, flags.tolist()) if flag]
    return ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")


def _log(accelerator: Accelerator, run_dir: Path, row: dict[str, Any]) -> None:
    if accelerator.is_main_process:
        try:
            with open(run_dir / METRICS_NAME, "a") as f:
                f.write(json.dumps(row) + "\n")
        except OSError as exc:      # a full disk: name the file
            raise OSError(exc.errno, f"could not write {run_dir / METRICS_NAME}: {exc.strerror or exc}") from exc
    accelerator.log({k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}, step=row["step"])


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop rows logged after the checkpoint we resume from (all of them when the run starts without one), so the
    curve has no duplicated steps. A line
    that is not a JSON row (one cut off by a kill during its write) is dropped with a warning naming it."""
    if not path.exists():
        return
    rows = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            row_step = json.loads(line)["step"] if line.strip() else None
        except (json.JSONDecodeError, KeyError, TypeError):
            warnings.warn(f"{path}, line {number}: not a metrics row, dropped: {line[:80]!r}", stacklevel=2)
            continue
        if row_step is not None and row_step <= step:
            rows.append(line)
    atomic_write_bytes(path, lambda f: f.write("".join(r + "\n" for r in rows).encode()))


def _save(accelerator: Accelerator, run_dir: Path, model, optimizer, step: int, cfg: RunConfig,
          pretrain_seconds: float, pretrain_device_seconds: float, processes_seen: list[int],
          devices_seen: list[str], data_counts: dict[str, Any] | None) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_checkpoint(run_dir, {
            "model": accelerator.unwrap_model(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
            "step": step,
            "torch_rng": torch.get_rng_state(),
            "config": cfg.to_dict(),
            "pretrain_seconds": pretrain_seconds,
            "pretrain_device_seconds": pretrain_device_seconds,
            "processes": accelerator.num_processes,
            "processes_seen": processes_seen,
            "devices_seen": devices_seen,
            "data_counts": data_counts,     # the streamed path's (Feed.counts), else None
        })


def _other_processes_message(run_dir: Path, step: int, before: int, now: int) -> str:
    return (f"{run_dir}: resuming at step {step} with {now} process(es), where its checkpoint was written by "
            f"{before}: from here on the views' augmentations (drawn per process), BatchNorm's batches without "
            "encoder.global_bn and, on parquet shards, the images' order differ from an uninterrupted run; "
            "final.json lists every process count that trained the run (processes_seen)")


def _other_device_message(run_dir: Path, step: int, before: list[str], now: str) -> str:
    return (f"{run_dir}: resuming at step {step} on {now}, where its checkpoint was written on "
            f"{', '.join(before)}: its device-hours add up time on each; final.json's device names this one, its "
            "devices_seen every device that ran the run")


def _evaluate_apart(accelerator: Accelerator, model, cfg: RunConfig, feed: Feed, mixed_precision: str,
                    protocols: tuple[str, ...], progress: str | None = None,
                    partial: PartialEvaluation | None = None) -> dict[str, Any]:
    """_evaluate with the CPU block cache emptied before and after: evaluation allocates other sizes than
    the training step, and neither phase's idle blocks serve the other (see cpu_cache.py)."""
    args = (accelerator, model, cfg, feed, mixed_precision, protocols, progress, partial)
    if not protocols:
        return _evaluate(*args)
    cpu_cache.release_idle()
    try:
        return _evaluate(*args)
    finally:
        cpu_cache.release_idle()


def _evaluate(accelerator: Accelerator, model, cfg: RunConfig, feed: Feed, mixed_precision: str,
              protocols: tuple[str, ...], progress: str | None = None,
              partial: PartialEvaluation | None = None) -> dict[str, Any]:
    """Evaluate the encoder f(.) (the representation h, before the head; a protocol may also read the head g(.))
    on the main process; with `progress` (a label), a progress bar names the protocol running (fine-tuning or a
    transfer evaluation may take as long as pretraining). With `partial`, each protocol's metrics are saved as it
    finishes, and each part's of a protocol in parts, and those an interrupted attempt saved are kept, not run again
    (one line says which); a fine-tuning saves its progress there too."""
    metrics: dict[str, Any] = {}
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and protocols:
        network = accelerator.unwrap_model(model)
        kept = partial.kept if partial is not None else {}
        if partial is not None:
            _say_what_is_kept(progress or "evaluate", partial, protocols)
        bar = ProtocolProgress(progress, len([p for p in protocols if p not in kept])) if progress else None
        try:
            metrics.update(run_protocols(network.encoder, feed, cfg, autocast_dtype(mixed_precision), protocols,
                                         head=network.head, announce=bar, kept=kept,
                                         finished=partial.save if partial is not None else None,
                                         parts_of=partial.parts_of if partial is not None else None))
            if bar is not None:
                bar.finish()
        finally:
            if bar is not None:
                bar.close()        # interrupted, it shows where: not the last protocol counted as done
    if accelerator.num_processes > 1:
        box = [metrics]
        broadcast_object_list(box)
        metrics = box[0]
    return metrics


def _say_what_is_kept(label: str, partial: PartialEvaluation, protocols: tuple[str, ...]) -> None:
    """One line when an earlier attempt's saved protocols or parts of one are kept, or saved ones are set aside (and
    why)."""
    in_order = [name for name in PROTOCOLS if name in protocols]
    in_part = {name: list(partial.kept_parts(name)) for name in in_order
               if name not in partial.kept and partial.kept_parts(name)}
    done = [name if name not in in_part else f"{name} in part ({', '.join(in_part[name])})" for name in in_order
            if name in partial.kept or name in in_part]
    if done:
        rest = [name if name not in in_part else f"the rest of {name}" for name in in_order
                if name not in partial.kept]
        running = f"running {', '.join(rest)}" if rest else "nothing left to run"
        print(f"{label}: {', '.join(done)} already done before the interruption (kept); {running}", file=sys.stderr,
              flush=True)
    elif partial.discarded:
        print(f"{label}: {partial.discarded}; evaluating every protocol again", file=sys.stderr, flush=True)


class ProtocolProgress:
    """A progress bar over the evaluation protocols, called with each protocol's name as it starts."""

    def __init__(self, label: str, total: int):
        self.bar = tqdm(total=total, desc=label, unit="protocol", dynamic_ncols=True)
        self.started = False

    def __call__(self, name: str) -> None:
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_postfix_str(name, refresh=True)

    def finish(self) -> None:
        """The last protocol is done."""
        if self.started:
            self.bar.update(1)
            self.started = False

    def close(self) -> None:
        self.bar.close()


def _tracker_config(cfg: RunConfig) -> dict[str, Any]:
    return {k: (",".join(map(str, v)) if isinstance(v, tuple) else v) for k, v in cfg.flat().items()
            if v is None or isinstance(v, (int, float, str, bool, tuple))}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def total_steps_for(cfg: RunConfig, num_train_images: int) -> int:
    """How many optimiser steps `cfg` trains for on a dataset of this size (for planners and estimates)."""
    return max(1, round(cfg.epochs * (num_train_images // cfg.batch_size)))


__all__ = ["train", "check_inputs", "needs_test_split", "NonFiniteLossError", "total_steps_for", "METRICS_NAME", "FINAL_NAME"]
