"""simclr_core and registry request huge pages before torch allocates, and torch's allocator honours it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simclr_core.hugepages import ENV_VAR

THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def run_python(code: str, env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if env_value is not None:
        env[ENV_VAR] = env_value
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()


@pytest.mark.parametrize("package", ["simclr_core", "registry"])
def test_importing_the_package_requests_huge_pages_unless_the_user_said_otherwise(package):
    code = f"import os, sys, {package}; print(os.environ.get({ENV_VAR!r}))"
    assert run_python(code, None) == "1"
    assert run_python(code, "0") == "0"


# Touch a fresh 64 MiB tensor and count the page faults it costs: 16,384 with 4 KiB pages, 32 with 2 MiB ones.
FAULTS = """
import resource, simclr_core, torch
x = torch.empty(64 << 20, dtype=torch.uint8)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x.fill_(1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not THP_MODE.exists() or "[never]" in THP_MODE.read_text(),
                    reason="the kernel has transparent huge pages disabled")
def test_torch_allocates_large_tensors_on_huge_pages_after_import():
    with_huge = int(run_python(FAULTS, None))
    without = int(run_python(FAULTS, "0"))
    assert without >= 8_000, without
    assert with_huge < without / 4, (with_huge, without)
