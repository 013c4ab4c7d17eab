"""simclr_core keeps freed CPU tensors mapped (heap.py): a tensor freed and allocated again costs no page faults."""
import os
import subprocess
import sys

import pytest

from simclr_core.heap import SWITCH

# Allocate, touch and free a 64 MiB tensor five times; count the page faults of the last four.
REUSE_FAULTS = """
import resource, simclr_core, torch
torch.set_num_threads(1)
def touch():
    torch.empty(64 << 20, dtype=torch.uint8).fill_(1)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run_python(code: str, **env_overrides: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in (SWITCH, "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    env.update(env_overrides)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_a_freed_tensor_is_reused_without_page_faults():
    kept = int(run_python(REUSE_FAULTS))
    given_back = int(run_python(REUSE_FAULTS, **{SWITCH: "0"}))
    assert given_back >= 100, given_back              # 2 MiB pages: 32 per 64 MiB; 4 KiB pages: 16,384
    assert kept * 10 < given_back, (kept, given_back)


@pytest.mark.parametrize("env", [{SWITCH: "0"}, {"MALLOC_TRIM_THRESHOLD_": "131072"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"}])
def test_the_users_own_allocator_settings_are_left_alone(env):
    code = "import simclr_core.heap as heap; print(heap.keep_freed_memory())"
    assert run_python(code, **env) == "False"
    if sys.platform.startswith("linux"):
        assert run_python(code) == "True"


def test_a_bad_switch_value_names_the_valid_ones():
    result = subprocess.run([sys.executable, "-c", "import simclr_core"], capture_output=True, text=True,
                            env={**os.environ, SWITCH: "yes"}, timeout=120)
    assert result.returncode != 0
    assert "SIMCLR_KEEP_HEAP must be 0 (glibc's defaults) or 1 (keep freed memory), got 'yes'" in result.stderr
