import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_env():
    """Environment for running ``python -m neuralhss.cli`` in a subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def python():
    return sys.executable


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The tests are many small ops; on a shared 2-core machine OpenMP threads waiting for each
    # other made them up to 50x slower than a single thread.
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
