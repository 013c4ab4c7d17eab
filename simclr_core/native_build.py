"""C++ kernels compiled for this CPU on first use, cached by torch, with an environment switch and a fallback.

Three sources use this: the fused augmentation kernels (augment/native.cpp), the fused BatchNorm + ReLU of
the encoders (models/native_bn.cpp) and the CPU block cache (cpu_cache.cpp). Each needs a C++ compiler
(g++) and ninja at its first use (~30-40 s); torch caches the build (~/.cache/torch_extensions). Where the
build fails, or the switch says "0", the module is None and the callers fall back: eager PyTorch ops that
compute the same thing (tested), or torch's own CPU allocator. `start_builds` starts the builds a run will
ask for side by side on threads of their own, so that a first run waits for them once instead of in turn.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import io
import logging
import os
import platform
import re
import sys
import sysconfig
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from simclr_core.cgroups import usable_cpus

# A build takes about a minute (30-90 s on the 2-core reference CPU); a build lock older than this was left by a
# build that was killed.
STALE_BUILD_LOCK_S = 15 * 60


def build_name(prefix: str, source: Path) -> str:
    """`prefix` + a hash of the source, the CPU's instruction sets, torch's and Python's versions.

    -march=native code runs only on CPUs with this one's instruction sets: on a cluster whose nodes share a
    home directory (torch caches builds there), each kind of CPU gets a build of its own. Environments with other
    versions of torch or Python (which share that cache too) each keep theirs instead of rebuilding in turn.
    """
    import torch

    flags = f"{platform.machine()} torch {torch.__version__} python {sys.version_info[0]}.{sys.version_info[1]} "
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags += line
                break
    except OSError:
        pass
    return f"{prefix}_" + hashlib.sha256(flags.encode() + source.read_bytes()).hexdigest()[:12]


def compile_extension(name: str, source: Path, *, openmp: bool) -> Any:
    """Build (or load the cached build of) `source` as the Python module `name`.

    `openmp`: the kernels use ATen's parallel_for, which runs on torch's OpenMP threads only when compiled
    with -fopenmp; without it they are single-threaded and only `omp simd` is honoured.
    """
    cpp_extension = _cpp_extension()
    cflags = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp" if openmp else "-fopenmp-simd"]
    folder = Path(cpp_extension._get_build_directory(name, verbose=False))   # where torch caches the build
    with build_turn(folder, source.name, torch_lock_blocks=hasattr(cpp_extension, "FileBaton")):
        fresh = not (folder / f"{name}.so").is_file()
        if fresh:   # a first build takes a while with no output of its own: say what is happening, once
            say(f"simclr_core: compiling {source.name} for this CPU (first use only, about 30-90 s; cached in "
                f"{folder.parent})...")
        started = time.perf_counter()
        module = cpp_extension.load(name=name, sources=[str(source)], extra_cflags=cflags,
                                    extra_ldflags=["-fopenmp"] if openmp else [])
    if fresh:
        say(f"simclr_core: {source.name} compiled in {time.perf_counter() - started:.0f} s")
    return module


_import_lock = threading.Lock()


def _cpp_extension():
    """torch.utils.cpp_extension, imported once, with ninja on PATH. Builds on other threads call this too:
    redirect_stderr swaps the process's sys.stderr, so only the first import (under the lock) may do it."""
    with _import_lock:
        if "torch.utils.cpp_extension" not in sys.modules:
            # Importing cpp_extension on a machine without CUDA logs "No CUDA runtime is found, using
            # CUDA_HOME=..." at warning level (torch < 2.5 prints it to stderr); these builds are CPU code, so the
            # line only alarms (it printed on every first-run command).
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            with contextlib.redirect_stderr(io.StringIO()):
                importlib.import_module("torch.utils.cpp_extension")
        _put_ninja_on_path()
    return sys.modules["torch.utils.cpp_extension"]


def _new_import_lock() -> None:
    global _import_lock
    _import_lock = threading.Lock()     # a build thread of the parent may have held it when the child was forked


os.register_at_fork(after_in_child=_new_import_lock)


def start_builds(extensions: list[LazyExtension], at_once: int | None = None) -> None:
    """Start building (or loading the cached build of) each of `extensions` on a thread of its own, `at_once` at a
    time (default: the CPUs this process may use; each build is one single-threaded compiler), in the order
    given; each one's first caller then finds it loaded or waits for it, and a failure is told to that caller as
    a build of its own would be. Starts nothing for a switch at "0" or a module already loaded; a bad switch
    raises here, before the run spends any compute."""
    todo = [extension for extension in extensions if extension.wants_build()]
    if todo:
        # On this thread: its import redirects stderr, which would hide the caller's lines. Where it fails (torch's
        # builder imports setuptools, which a Python 3.12 environment may lack), each build fails alike and warns
        # its caller, who falls back.
        with contextlib.suppress(Exception):
            _cpp_extension()
        turns = threading.BoundedSemaphore(at_once or usable_cpus())
        for extension in todo:
            extension.start(turns)


@contextlib.contextmanager
def build_turn(folder: Path, what: str, *, torch_lock_blocks: bool):
    """One process at a time builds or loads the extension in `folder`: an OS lock on a file of ours, which the
    kernel releases when its holder dies (a job's time limit, an OOM kill), so a killed build never blocks the
    next process. Older torch (2.11 among them) guards its builds with a file whose existence blocks (FileBaton,
    `torch_lock_blocks`) and waits for it forever, silently, once a killed build left it: every builder holds
    this turn, so such a file found while holding it is stale and is removed. Where the file system has no
    locks, the file's age decides instead (clear_stale_build_lock)."""
    from filelock import FileLock, Timeout

    folder.mkdir(parents=True, exist_ok=True)
    turn = FileLock(str(folder / "simclr_build.lock"))
    try:
        try:
            turn.acquire(timeout=0)
        except Timeout:
            say(f"simclr_core: waiting for another process's build of {what} (in {folder})")
            turn.acquire()
    except OSError:          # no locks on this file system (an NFS mount with nolock)
        if torch_lock_blocks:
            clear_stale_build_lock(folder / "lock", what)
        yield
        return
    try:
        left = folder / "lock"
        if torch_lock_blocks and left.exists():
            warnings.warn(f"simclr_core: removing {left}, left by a build of {what} that was killed (no process "
                          "is building it)", stacklevel=3)
            left.unlink(missing_ok=True)
        yield
    finally:
        turn.release()


def clear_stale_build_lock(lock: Path, what: str) -> None:
    """Where the turn's OS lock is not available: torch's FileBaton file older than any build is removed with a
    warning; a younger one is said, so that a wait for another process's build does not look like a hang."""
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return
    if age > STALE_BUILD_LOCK_S:
        warnings.warn(f"simclr_core: removing {lock}, left {age / 60:.0f} minutes ago by a build of {what} that "
                      "did not finish (builds take about a minute)", stacklevel=2)
        lock.unlink(missing_ok=True)
    else:
        say(f"simclr_core: waiting for another process's build of {what} (its lock: {lock}; if no other process "
            "is building, delete that file)")


def say(line: str) -> None:
    """`line` on stderr, whole: builds on other threads say theirs while a progress bar may be drawn, which
    tqdm.write clears first and draws again below the line."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)
    sys.stderr.flush()


def _put_ninja_on_path() -> None:
    """torch runs `ninja` from PATH; the pip-installed one sits beside this interpreter's scripts."""
    scripts = sysconfig.get_path("scripts")
    path = os.environ.get("PATH", "")
    if scripts and scripts not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join(filter(None, (path, scripts)))


def build_failure(error: Exception) -> str:
    """What made a build fail, in a line: torch's error names the extension and holds the whole compiler run
    (command lines, source excerpts); the compiler's first error line is what to act on. A full disk says
    where the compiler's temporary files go."""
    text = str(error)
    head = re.match(r"Error building extension '[^']+'", text)
    first = next((line.strip() for line in text.splitlines() if re.search(r"(fatal )?error:", line)), None)
    if head is None or first is None:
        return text
    said = f"{head.group(0)}: {first}"
    if "No space left on device" in first:
        where = os.environ.get("TMPDIR") or "/tmp"
        said += (f" (the compiler writes its temporary files to $TMPDIR, else /tmp: here {where}; free space "
                 "there or point TMPDIR to a folder with room)")
    return said


class LazyExtension:
    """`ext()` -> the compiled module, or None where the switch is "0" or the build failed (with a warning
    naming `fallback`). Thread-safe (worker threads may be the first to ask); `ext.cache_clear()` forgets the
    module or its absence, e.g. after the switch changed."""

    def __init__(self, switch: str, build: Callable[[], Any], fallback: str, *,
                 off_means: str = "eager PyTorch ops", on_means: str = "native kernels"):
        self.switch = switch
        self._build = build
        self._fallback = fallback
        self._choices = f"0 ({off_means}) or 1 ({on_means})"
        self._lock = threading.Lock()
        self._load = functools.lru_cache(maxsize=None)(self._load_uncached)
        self._started: _Started | None = None
        os.register_at_fork(after_in_child=self._new_lock)

    def __call__(self) -> Any:
        with self._lock:
            return self._load()

    def cache_clear(self) -> None:
        self._load.cache_clear()

    def wants_build(self) -> bool:
        """Whether start() would start a build: the switch is "1" and nothing was loaded or started yet."""
        return (self._setting() == "1" and self._started is None and not self._lock.locked()
                and self._load.cache_info().currsize == 0)

    def start(self, turns: threading.Semaphore) -> None:
        """Build on a thread of its own, holding one of `turns` (start_builds); the next call waits for it
        instead of building."""
        if not self._lock.acquire(blocking=False):    # a caller is loading it right now
            return
        try:
            if self._started is None and self._load.cache_info().currsize == 0:
                self._started = _Started(self._build, turns, name=f"build for {self.switch}")
        finally:
            self._lock.release()

    def _setting(self) -> str:
        setting = os.environ.get(self.switch, "1")
        if setting not in ("0", "1"):
            raise ValueError(f"{self.switch} must be {self._choices}, got {setting!r}")
        return setting

    def _load_uncached(self) -> Any:
        started, self._started = self._started, None
        if self._setting() == "0":
            return None
        try:
            return started.result() if started is not None else self._build()
        except Exception as error:           # no compiler or ninja here: the eager ops compute the same
            where = (" (torch builds them in $TORCH_EXTENSIONS_DIR, else ~/.cache/torch_extensions: set it to a "
                     "writable folder to have them)" if isinstance(error, PermissionError) else "")
            warnings.warn(f"simclr_core: native CPU kernels did not build ({build_failure(error)}){where}; using "
                          f"{self._fallback}. Set {self.switch}=0 to skip the build.", stacklevel=3)
            return None

    def _new_lock(self) -> None:
        self._lock = threading.Lock()     # a thread of the parent may have held it when the child was forked
        self._started = None              # and its build thread is not in the child: the child builds itself


class _Started:
    """`build()` running on a thread once it holds one of `turns`; result() waits for it and returns its module or
    raises its error. The thread is not a daemon: a process that ends meanwhile waits for the compiler rather
    than leave it writing into torch's cache unwatched, and says so. A build whose turn has not come when the main
    thread ends (Ctrl-C, SIGTERM, an error) is not started: the process would wait for it too."""

    def __init__(self, build: Callable[[], Any], turns: threading.Semaphore, name: str):
        self._build = build
        self._turns = turns
        self._name = name
        self._under_way = False
        self._outcome: tuple[Any, BaseException | None] = (None, None)
        self._thread = threading.Thread(target=self._run, name=name)
        self._thread.start()
        threading.Thread(target=self._say_if_exit_waits, name=f"{name}: exit", daemon=True).start()

    def _run(self) -> None:
        try:
            if not self._take_turn():
                raise RuntimeError(f"the {self._name} was not started: the process was ending")
            try:
                self._outcome = (self._build(), None)
            finally:
                self._turns.release()
        except BaseException as error:     # told by result(), on the caller's thread, not as a thread traceback
            self._outcome = (None, error)

    def _take_turn(self) -> bool:
        """A turn, or False once the main thread has ended (the interpreter is exiting)."""
        while not self._turns.acquire(timeout=0.2):
            if not threading.main_thread().is_alive():
                return False
        if not threading.main_thread().is_alive():
            self._turns.release()
            return False
        self._under_way = True
        return True

    def _say_if_exit_waits(self) -> None:
        threading.main_thread().join()       # returns as the interpreter starts to exit
        if self._thread.is_alive() and self._under_way:
            say(f"simclr_core: exiting once the {self._name} under way ends (a compiler is not stopped "
                "halfway, which would leave a broken build in torch's cache; about 30-90 s)")

    def result(self) -> Any:
        self._thread.join()
        module, error = self._outcome
        if error is not None:
            raise error
        return module
