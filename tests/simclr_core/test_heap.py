"""simclr_core keeps freed CPU tensors mapped (heap.py): a tensor freed and allocated again costs no page faults."""
import os
import subprocess
import sys

from pathlib import Path

import pytest

from simclr_core.heap import SWITCH

THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")

# Allocate, touch and free a 24 MiB tensor (below the 32 MiB threshold) five times; count the page faults of
# the last four.
REUSE_FAULTS = """
import resource, simclr_core, torch
torch.set_num_threads(1)
def touch():
    torch.empty(24 << 20, dtype=torch.uint8).fill_(1)
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


# Measured where torch's allocator asks for huge pages (the default simclr_core sets, hugepages.py); with
# THP_MEM_ALLOC_ENABLE=0 the freed block faulted in again here whatever glibc's thresholds.
@pytest.mark.skipif(not sys.platform.startswith("linux") or not THP_MODE.exists()
                    or "[never]" in THP_MODE.read_text(), reason="glibc with transparent huge pages only")
def test_a_freed_tensor_is_reused_without_page_faults():
    kept = int(run_python(REUSE_FAULTS))
    given_back = int(run_python(REUSE_FAULTS, **{SWITCH: "0"}))
    assert given_back >= 40, given_back               # 2 MiB pages: 12 per 24 MiB, then page tables
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
