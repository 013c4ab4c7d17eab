"""start_builds: the builds a CPU run will ask for, started side by side on threads, with fake build functions
(a real build takes a compiler and minutes; test_augment_native.py builds for real)."""
import os
import sys
import threading
import time
import warnings

import pytest
import torch

from simclr_core import cpu_cache
from simclr_core.augment import native
from simclr_core.config import RunConfig
from simclr_core.models import fused_bn
from simclr_core.native_build import LazyExtension, start_builds
from simclr_core.train import native_extensions

SWITCHES = ("SIMCLR_TEST_BUILD_A", "SIMCLR_TEST_BUILD_B", "SIMCLR_TEST_BUILD_C")


@pytest.fixture(autouse=True)
def switches_on(monkeypatch):
    for switch in SWITCHES:
        monkeypatch.delenv(switch, raising=False)


def test_started_builds_run_side_by_side():
    # Each build waits for the other to have started: built one after the other, the first one's wait times out.
    both_started = threading.Barrier(2, timeout=20)
    modules = {switch: object() for switch in SWITCHES[:2]}

    def build(switch):
        both_started.wait()
        return modules[switch]

    extensions = [LazyExtension(switch, lambda switch=switch: build(switch), "the eager ops") for switch in modules]
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # a broken barrier would be a failed build's warning
        start_builds(extensions, at_once=2)
        assert [extension() for extension in extensions] == list(modules.values())


def test_builds_take_turns_no_more_than_at_once_at_a_time():
    running, most, lock = [0], [0], threading.Lock()

    def build(name):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return name

    extensions = [LazyExtension(name, lambda name=name: build(name), "the eager ops") for name in SWITCHES]
    start_builds(extensions, at_once=2)
    assert [extension() for extension in extensions] == list(SWITCHES)
    assert most == [2]                  # two side by side, the third waited for a turn


def test_a_caller_during_the_background_build_waits_for_it_and_gets_its_module():
    started, finish, calls, module = threading.Event(), threading.Event(), [], object()

    def build():
        calls.append(1)
        started.set()
        assert finish.wait(20)
        return module

    extension = LazyExtension(SWITCHES[0], build, "the eager ops")
    start_builds([extension])
    assert started.wait(20)
    got = []
    caller = threading.Thread(target=lambda: got.append(extension()))
    caller.start()
    time.sleep(0.3)
    assert caller.is_alive() and not got          # waiting for the build under way, not building again
    finish.set()
    caller.join(20)
    assert got == [module] and extension() is module and calls == [1]


def test_a_failed_background_build_warns_its_first_caller_as_a_build_of_its_own_would(monkeypatch):
    uncaught = []
    monkeypatch.setattr(threading, "excepthook", uncaught.append)
    failed = threading.Event()

    def build():
        failed.set()
        raise RuntimeError("Ninja is required to load C++ extensions")

    extension = LazyExtension(SWITCHES[0], build, "the eager ops")
    with warnings.catch_warnings(record=True) as early:
        warnings.simplefilter("always")
        start_builds([extension])
        assert failed.wait(20)
        time.sleep(0.2)
    assert early == []                            # nothing said on the build's thread
    with pytest.warns(UserWarning) as caught:
        assert extension() is None
    (warning,) = caught
    assert str(warning.message) == ("simclr_core: native CPU kernels did not build (Ninja is required to load C++ "
                                    "extensions); using the eager ops. Set SIMCLR_TEST_BUILD_A=0 to skip the build.")
    assert warning.filename == __file__           # where it was asked for, as without start_builds
    assert uncaught == []


def test_a_switch_at_0_or_a_module_already_loaded_starts_nothing_and_a_bad_switch_stops_at_once(monkeypatch):
    calls = []
    extension = LazyExtension(SWITCHES[0], lambda: calls.append(1) or "module", "the eager ops")
    monkeypatch.setenv(SWITCHES[0], "0")
    threads = threading.active_count()
    start_builds([extension])
    assert threading.active_count() == threads and extension() is None and calls == []

    monkeypatch.setenv(SWITCHES[0], "1")
    extension.cache_clear()
    assert extension() == "module" and calls == [1]
    start_builds([extension])
    assert threading.active_count() == threads and extension() == "module" and calls == [1]

    extension.cache_clear()
    monkeypatch.setenv(SWITCHES[0], "yes")
    with pytest.raises(ValueError, match=r"SIMCLR_TEST_BUILD_A must be 0 .* or 1 .*, got 'yes'"):
        start_builds([extension])
    assert calls == [1]


@pytest.mark.parametrize("overrides, world, bn", [({}, 1, True), ({"channels_last": False}, 1, False),
                                                   ({"compile": "default"}, 1, False), ({}, 2, False),
                                                   ({"encoder.global_bn": False}, 2, True)])
def test_a_cpu_run_builds_the_fused_batchnorm_only_where_its_forward_runs_it(overrides, world, bn):
    expected = ([cpu_cache.extension] if sys.platform.startswith("linux") else []) + [native.kernels]
    assert native_extensions(RunConfig().with_overrides(overrides), world) == expected + [fused_bn.kernels] * bn


class StopAtTheData(Exception):
    pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CPU run's builds")
def test_train_starts_the_builds_before_the_block_cache_waits_for_its_own(monkeypatch, tmp_path):
    from simclr_core import train as train_module

    def open_feed(*args, **kwargs):
        raise StopAtTheData

    order = []
    monkeypatch.setattr(train_module, "start_builds", lambda extensions: order.append(("start", extensions)))
    monkeypatch.setattr(cpu_cache, "install", lambda: order.append(("install",)) or False)
    monkeypatch.setattr(train_module, "open_feed", open_feed)
    cfg = RunConfig().with_overrides({"eval.protocols": ["knn"]})
    with pytest.raises(StopAtTheData):
        train_module.train(cfg, tmp_path)
    assert order == [("start", native_extensions(cfg, 1)), ("install",)]


def test_a_process_ending_during_the_builds_starts_none_not_under_way_and_says_what_it_waits_for(tmp_path):
    # Ctrl-C or SIGTERM ends train() while a build runs and another waits its turn: the process waits for the
    # compiler under way (saying so), but starts no build after its main thread has ended.
    import subprocess

    script = tmp_path / "interrupted.py"
    script.write_text(
        "import threading, time\n"
        "from simclr_core.native_build import LazyExtension, start_builds\n"
        "running = threading.Event()\n"
        "def build(name):\n"
        "    print('built', name, flush=True)\n"
        "    running.set()\n"
        "    time.sleep(1)\n"
        "    return name\n"
        "extensions = [LazyExtension(f'SIMCLR_TEST_BUILD_{n}', lambda n=n: build(n), 'the eager ops') for n in 'ABC']\n"
        "start_builds(extensions, at_once=1)\n"
        "assert running.wait(20)\n"
        "raise KeyboardInterrupt\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode != 0 and "KeyboardInterrupt" in done.stderr
    assert done.stdout.split("\n") == ["built A", ""]
    assert ("simclr_core: exiting once the build for SIMCLR_TEST_BUILD_A under way ends (a compiler is not stopped "
            "halfway") in done.stderr


def test_torch_builder_missing_falls_back_with_a_warning_rather_than_failing_the_run(monkeypatch):
    # torch.utils.cpp_extension imports setuptools, which Python 3.12 environments lack unless installed: each build
    # then fails, and its caller falls back as it did before builds were started ahead.
    from simclr_core import native_build

    def no_setuptools():
        raise ModuleNotFoundError("No module named 'setuptools'")

    monkeypatch.setattr(native_build, "_cpp_extension", no_setuptools)
    extension = LazyExtension(SWITCHES[0], lambda: native_build._cpp_extension(), "the eager ops")
    start_builds([extension])
    with pytest.warns(UserWarning, match=r"did not build \(No module named 'setuptools'\); using the eager ops"):
        assert extension() is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_a_build_thread_imports_torchs_builder_can_build_itself():
    """A child forked while a build thread of the parent held the import lock inherited it held, with no thread to
    release it: its own first build waited forever."""
    from simclr_core import native_build

    held, release = threading.Event(), threading.Event()

    def hold():
        with native_build._import_lock:
            held.set()
            release.wait(20)
    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(20)
    pid = os.fork()
    if pid == 0:                                   # the child: exit 0 if it can take the lock
        os._exit(0 if native_build._import_lock.acquire(timeout=5) else 1)
    release.set()
    holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
