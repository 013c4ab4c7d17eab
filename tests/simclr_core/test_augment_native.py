"""native.cpp's fused CPU kernels against the eager kernels of functional.py (themselves tested against
torchvision in test_augment.py), and the pipeline's views with and without them."""
import os
import shutil
import subprocess
import sys

import pytest
import torch

from simclr_core.augment import build_augmentation, functional as F, native, sampling
from simclr_core.config import AugmentConfig
from simclr_core.native_build import LazyExtension, build_failure

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def kernels():
    compiled = native.kernels()
    if compiled is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler here: the pipeline runs its eager ops")
    assert compiled is not None, "g++ is here, yet the native kernels did not build"
    return compiled


@pytest.mark.parametrize("channels, in_h, in_w, size", [(3, 40, 50, 32), (3, 40, 50, 96), (1, 33, 33, 16)])
def test_crop_kernel_equals_float_conversion_then_resized_crop_with_flip(kernels, channels, in_h, in_w, size):
    images = torch.randint(0, 256, (6, channels, in_h, in_w), dtype=torch.uint8, generator=gen(1))
    views = 12                                                               # two views of each image
    sources = torch.arange(views) % 6
    boxes = sampling.crop_boxes(views, in_h, in_w, (0.08, 1.0), (3 / 4, 4 / 3), gen(3))
    boxes[0] = torch.tensor([0, 0, in_h, in_w])                             # the whole image
    boxes[1] = torch.tensor([in_h - 1, in_w - 1, 1, 1])                     # the last pixel
    flip = torch.rand(views, generator=gen(4)) < 0.5
    out = torch.full((views, 3, size, size), float("nan"))
    kernels.resized_crop_uint8(images, boxes, flip, out)
    expected = F.resized_crop(F.to_float_rgb(images[sources]), boxes, size, flip)
    # 1e-5, as against torchvision: grid_sample's coordinates go through [-1, 1] and back (~1e-5 px)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kernel_size, side", [(3, 16), (7, 30), (23, 48)])
def test_blur_kernel_blurs_exactly_the_given_rows_as_the_eager_blur(kernels, kernel_size, side):
    x = torch.rand(8, 3, side, side + 3, generator=gen(5))
    rows = torch.tensor([1, 4, 5])
    sigma = torch.rand(3, generator=gen(6)) * 1.9 + 0.1
    blurred = x.clone()
    kernels.blur_rows_(blurred, rows, F.blur_kernels(kernel_size, sigma))
    expected = x.clone()
    expected[rows] = F.gaussian_blur(x[rows], kernel_size, sigma)
    torch.testing.assert_close(blurred, expected, atol=1e-6, rtol=0)
    untouched = torch.tensor([0, 2, 3, 6, 7])
    assert torch.equal(blurred[untouched], x[untouched])


def test_a_narrow_blur_skips_its_underflowing_taps_and_equals_the_eager_blur(kernels):
    x = torch.rand(4, 3, 40, 40, generator=gen(8))
    sigma = torch.tensor([0.1, 0.3, 0.5, 2.0])
    weights = F.blur_kernels(23, sigma)
    assert ((weights > 0) & (weights < torch.finfo(torch.float32).tiny)).any()   # subnormal outer taps (sigma 0.3)
    assert (weights[0] == 0).any()                                                  # and taps that are zero (0.1)
    blurred = x.clone()
    kernels.blur_rows_(blurred, torch.arange(4), weights)
    torch.testing.assert_close(blurred, F.gaussian_blur(x, 23, sigma), atol=1e-6, rtol=0)
    one_tap = torch.zeros(1, 23)
    one_tap[0, 11] = 1.0                                                            # the identity, 22 taps skipped
    same = x[:1].clone()
    kernels.blur_rows_(same, torch.tensor([0]), one_tap)
    assert torch.equal(same, x[:1])


def test_colour_kernel_equals_jitter_in_each_samples_order_then_dropping(kernels):
    n = 96
    factors, order = sampling.color_jitter_params(n, 1.0, gen(7))
    factors[::6] = torch.tensor([1.0, 1.0, 1.0, 0.0])                       # not jittered
    factors[1::6, 3] = 0.0                                                   # jittered without a hue shift
    factors[2::6, :3] = torch.tensor([0.2, 1.8, 0.0])                        # the ends of strength 1
    dropped = torch.rand(n, generator=gen(8)) < 0.3
    x = torch.rand(n, 3, 20, 21, generator=gen(9))
    x[3::6] = x[3::6, :1]                                                    # grey images: hue undefined
    out = x.clone()
    kernels.color_(out, factors, order, dropped)
    expected = F.color_jitter(x, factors, order)
    expected[dropped] = F.rgb_to_grayscale(expected[dropped], num_output_channels=3)
    torch.testing.assert_close(out, expected, atol=2e-6, rtol=0)
    assert torch.equal(out[::6][~dropped[::6]], x[::6][~dropped[::6]])     # the identity is exact


@pytest.mark.parametrize("size, ops", [
    (32, ("crop", "color")),
    (64, ("crop", "color", "blur")),
    (224, ("crop", "color", "blur")),                                        # chunked
    (32, ("crop", "color", "blur", "cutout", "rotate", "noise", "sobel")),
])
def test_pipeline_views_with_native_kernels_equal_the_eager_views(kernels, size, ops, monkeypatch):
    images = torch.randint(0, 256, (20, 3, size, size), dtype=torch.uint8, generator=gen(10))
    if size == 224:
        # Smooth images, as photographs are: at 224 px both crops compute their float32 source coordinates
        # ~2e-5 px from the exact ones (each within 2.1e-5 of a float64 crop on noise images, measured),
        # which on pixel-to-pixel noise would be ~1e-4 after the colour jitter and normalisation.
        small = torch.rand(20, 3, 28, 28, generator=gen(10)) * 255
        images = torch.nn.functional.interpolate(small, size=224, mode="bilinear").round().to(torch.uint8)
    aug = build_augmentation(AugmentConfig(ops=ops, color_strength=1.0), size, MEAN, STD)
    fast = aug(images, gen(11))
    monkeypatch.setattr(native, "kernels", lambda: None)
    eager = aug(images, gen(11))
    for a, b in zip(fast, eager):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=0)    # after dividing by std ~0.25: 1.25e-5 in [0, 1]


def test_kernels_refuse_a_batch_they_cannot_read(kernels):
    with pytest.raises(RuntimeError, match="contiguous .* Float.* got Double"):
        kernels.color_(torch.rand(2, 3, 8, 8, dtype=torch.float64), torch.ones(2, 4), torch.zeros(2, 4).long(),
                       torch.zeros(2, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="contiguous"):
        kernels.blur_rows_(torch.rand(2, 3, 8, 8).transpose(2, 3), torch.tensor([0]), F.blur_kernels(3, torch.ones(1)))
    with pytest.raises(RuntimeError, match=r"boxes \(V, 4\)"):
        kernels.resized_crop_uint8(torch.zeros(1, 3, 8, 8, dtype=torch.uint8),
                                   torch.tensor([0, 0, 8, 8]), torch.tensor([False]), torch.empty(1, 3, 4, 4))
    with pytest.raises(RuntimeError, match="crop box outside the image"):
        kernels.resized_crop_uint8(torch.zeros(1, 3, 8, 8, dtype=torch.uint8),
                                   torch.tensor([[4, 4, 8, 8]]), torch.tensor([False]), torch.empty(1, 3, 4, 4))


def test_the_switch_turns_the_kernels_off_and_names_its_values(monkeypatch):
    native.kernels.cache_clear()
    try:
        monkeypatch.setenv(native.SWITCH, "0")
        assert native.kernels() is None
        native.kernels.cache_clear()
        monkeypatch.setenv(native.SWITCH, "yes")
        with pytest.raises(ValueError, match=r"SIMCLR_NATIVE_AUGMENT must be 0 .* or 1 .*, got 'yes'"):
            native.kernels()
    finally:
        native.kernels.cache_clear()


@pytest.mark.parametrize("error, hint", [(PermissionError(13, "Permission denied: '/home/me/.cache'"), True),
                                         (RuntimeError("Ninja is required"), False)])
def test_a_failed_build_falls_back_with_one_warning_naming_what_to_set(error, hint, monkeypatch):
    # A read-only home (cluster nodes, containers) is the one failure the user can fix with a setting.
    def build():
        raise error
    extension = LazyExtension("SIMCLR_TEST_SWITCH", build, "the eager ops")
    monkeypatch.delenv("SIMCLR_TEST_SWITCH", raising=False)
    with pytest.warns(UserWarning) as caught:
        assert extension() is None
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(f"simclr_core: native CPU kernels did not build ({error})")
    assert message.endswith("using the eager ops. Set SIMCLR_TEST_SWITCH=0 to skip the build.")
    assert ("set it to a writable folder" in message and "$TORCH_EXTENSIONS_DIR" in message) is hint


def test_a_build_on_a_full_temporary_disk_names_the_compiler_s_error_and_tmpdir(tmp_path, small_disk):
    # A real compile (torch's headers, then the compiler's temporary files) with $TMPDIR on a full tmpfs.
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler here")
    full = small_disk("256k", full=True)
    source = tmp_path / "tiny.cpp"
    source.write_text("#include <torch/extension.h>\nint twice(int x) { return 2 * x; }\n"
                      "PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def(\"twice\", &twice); }\n")
    script = (f"from pathlib import Path\nfrom simclr_core.native_build import LazyExtension, build_failure, compile_extension\n"
              f"ext = LazyExtension('SIMCLR_TEST_SWITCH', lambda: compile_extension('simclr_tiny_test', "
              f"Path({str(source)!r}), openmp=False), 'the eager ops')\nassert ext() is None")
    env = {**os.environ, "TMPDIR": str(full), "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    warning = next(line for line in done.stderr.splitlines() if "did not build" in line)
    assert "Error building extension 'simclr_tiny_test': " in warning and "No space left on device" in warning
    assert f"$TMPDIR, else /tmp: here {full}; free space there" in warning
    assert "-isystem" not in warning          # not the compiler's command line


def test_build_failures_are_told_by_the_compiler_s_first_error():
    output = ("Error building extension 'simclr_x': [1/2] c++ -MMD -isystem /torch/include -c x.cpp -o x.o\n"
              "FAILED: x.o\nc++ -MMD -isystem /torch/include -c x.cpp -o x.o\n"
              "x.cpp:3:5: error: 'foo' was not declared in this scope\n    3 |     foo();\n"
              "x.cpp:4:5: error: second\nninja: build stopped: subcommand failed.\n")
    assert build_failure(RuntimeError(output)) == \
        "Error building extension 'simclr_x': x.cpp:3:5: error: 'foo' was not declared in this scope"
    assert build_failure(RuntimeError("Ninja is required to load C++ extensions")) == \
        "Ninja is required to load C++ extensions"


def test_builds_are_named_by_source_and_cpu(tmp_path, monkeypatch):
    name = native._build_name()
    assert name.startswith("simclr_augment_") and name == native._build_name()
    edited = tmp_path / "native.cpp"
    edited.write_text(native.SOURCE.read_text() + "\n// edited\n")
    monkeypatch.setattr(native, "SOURCE", edited)
    assert native._build_name() != name


def test_environments_with_another_torch_keep_builds_of_their_own(monkeypatch):
    # They share ~/.cache/torch_extensions: with one name, each would rebuild over the other's build in turn.
    name = native._build_name()
    monkeypatch.setattr(torch, "__version__", torch.__version__ + ".other")
    assert native._build_name() != name


def test_a_build_lock_left_by_a_killed_build_is_removed_and_a_young_one_waited_for(tmp_path, capsys):
    import os
    import time

    from simclr_core.native_build import STALE_BUILD_LOCK_S, clear_stale_build_lock

    lock = tmp_path / "lock"
    lock.touch()
    clear_stale_build_lock(lock, "native.cpp")                # another process is building: wait, and say so
    assert lock.exists() and "waiting for another process's build of native.cpp" in capsys.readouterr().err
    old = time.time() - STALE_BUILD_LOCK_S - 60
    os.utime(lock, (old, old))
    with pytest.warns(UserWarning, match=r"removing .*lock, left 16 minutes ago by a build of native.cpp"):
        clear_stale_build_lock(lock, "native.cpp")            # torch would wait for it forever
    assert not lock.exists()
    clear_stale_build_lock(lock, "native.cpp")                # no lock: nothing to say
    assert capsys.readouterr().err == ""


HOLD_THE_TURN = """
import sys, time
from filelock import FileLock
held = FileLock(sys.argv[1])
held.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold_the_turn(folder, seconds: float):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_TURN, str(folder / "simclr_build.lock"), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_build_waits_its_turn_and_a_killed_builder_blocks_nobody(tmp_path, capsys):
    import signal
    import time

    from simclr_core.native_build import build_turn

    holder = _hold_the_turn(tmp_path, 2.0)              # another process is building: wait for it, and say so
    started = time.monotonic()
    with build_turn(tmp_path, "native.cpp", torch_lock_blocks=False):
        waited = time.monotonic() - started
    holder.wait()
    assert waited > 1.0 and f"waiting for another process's build of native.cpp (in {tmp_path})" in \
        capsys.readouterr().err

    killed = _hold_the_turn(tmp_path, 600.0)            # a builder killed mid-build (time limit, OOM)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    started = time.monotonic()
    with build_turn(tmp_path, "native.cpp", torch_lock_blocks=False):
        assert time.monotonic() - started < 1.0
    assert capsys.readouterr().err == ""


def test_torchs_blocking_build_file_left_by_a_killed_build_is_removed_at_once(tmp_path, recwarn):
    from simclr_core.native_build import build_turn

    left = tmp_path / "lock"                            # torch's FileBaton file (torch 2.11 and older)
    left.touch()
    with pytest.warns(UserWarning, match=r"removing .*lock, left by a build of native.cpp that was killed"):
        with build_turn(tmp_path, "native.cpp", torch_lock_blocks=True):
            assert not left.exists()
    left.touch()                                        # torch's own OS lock file (newer torch): not ours to touch
    with build_turn(tmp_path, "native.cpp", torch_lock_blocks=False):
        assert left.exists()
    assert not [w for w in recwarn if "removing" in str(w.message)]


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_normalisation_kernel_writes_either_layout_as_the_eager_one(kernels, memory_format):
    x = torch.rand(5, 3, 9, 11, generator=gen(12))
    out = torch.full_like(x, float("nan")).contiguous(memory_format=memory_format)
    kernels.normalize_into(x, *F.normalize_affine(MEAN, STD), out)
    assert out.is_contiguous(memory_format=memory_format)
    torch.testing.assert_close(out, F.normalize(x, MEAN, STD), atol=1e-6, rtol=0)
    with pytest.raises(RuntimeError, match="contiguous or channels_last"):
        kernels.normalize_into(x, *F.normalize_affine(MEAN, STD), torch.empty(5, 9, 3, 11).transpose(1, 2))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the line only shows where there is no CUDA")
def test_loading_the_kernels_prints_no_cuda_warning_on_a_cpu_machine():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "from simclr_core.augment import native; native.kernels()"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "No CUDA runtime is found" not in done.stderr
