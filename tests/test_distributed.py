"""Two processes under ``torchrun`` (gloo, CPU) take the same steps as one process on the same batches.

The model is the deterministic auto-encoder: a VAE's latent samples come from each process's own
generator, so two processes and one draw different noise (the expected gradient is the same, the
trajectory is not). Data order and dynamic binarisation are drawn for the global batch in every
process, so they agree.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

ARGS = ["--dataset", "digits", "--kind", "autoencoder", "--latent", "S2", "-hd", "32"]
ARGS += ["--epochs", "2", "--seed", "3", "--device", "cpu", "--train-limit", "512", "-bs", "64"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_processes_match_one(tmp_path: Path) -> None:
    single = tmp_path / "single"
    double = tmp_path / "double"
    one = subprocess.run(
        [sys.executable, "-m", "spherevae", "train", *ARGS, "--out", str(single)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    torchrun += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    two = subprocess.run(
        [*torchrun, "-m", "spherevae", "train", *ARGS, "--out", str(double)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr
    a = load_file(single / "model" / "model.safetensors")
    b = load_file(double / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)
    # the two processes really split the work: each saw half of every batch
    assert "512 training images" in two.stdout
    rows_one = (single / "metrics.csv").read_text().splitlines()
    rows_two = (double / "metrics.csv").read_text().splitlines()
    assert len(rows_one) == len(rows_two) == 3
    for r1, r2 in zip(rows_one[1:], rows_two[1:], strict=True):
        v1 = [float(v) for v in r1.split(",") if v]
        v2 = [float(v) for v in r2.split(",") if v]
        torch.testing.assert_close(torch.tensor(v2), torch.tensor(v1), rtol=1e-6, atol=0)
