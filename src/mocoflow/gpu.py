"""Give a local GPU job free device ids, one lock file per GPU.

Snakemake's ``--resources gpu=N`` bounds how many GPU jobs run at once but does not say *which*
devices a job may use. Locally, each job claims free ids itself by taking an exclusive ``flock`` on
``<lock_dir>/gpu<id>.lock`` and sets ``CUDA_VISIBLE_DEVICES``; the kernel drops the lock when the
process exits, even if it is killed. Under SLURM (``SLURM_JOB_ID`` set) the scheduler has already
chosen the devices, so this does nothing; it also does nothing when ``CUDA_VISIBLE_DEVICES`` is set
by the user or when there is no GPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def visible_device_ids() -> list[int]:
    """Device ids to choose from: ``MOCOFLOW_GPU_IDS`` (comma list, for tests) or torch's count."""
    override = os.environ.get("MOCOFLOW_GPU_IDS")
    if override is not None:
        return [int(x) for x in override.split(",") if x.strip()]
    try:
        import torch

        return list(range(torch.cuda.device_count()))
    except ImportError:
        return []


def lock_dir() -> Path:
    return Path(os.environ.get("MOCOFLOW_GPU_LOCK_DIR", Path.home() / ".cache" / "mocoflow" / "gpu-locks"))


@contextlib.contextmanager
def claim_devices(n: int, *, poll_seconds: float = 2.0, timeout: float | None = None) -> Iterator[list[int]]:
    """Hold ``n`` free device ids for the duration of the block and expose them via CUDA_VISIBLE_DEVICES."""
    if n <= 0 or os.environ.get("SLURM_JOB_ID") or (
            "CUDA_VISIBLE_DEVICES" in os.environ and "MOCOFLOW_GPU_IDS" not in os.environ):
        yield []
        return
    ids = visible_device_ids()
    if not ids:
        yield []
        return
    if n > len(ids):
        raise RuntimeError(f"job needs {n} GPUs but only {len(ids)} are visible: {ids}")
    directory = lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    held: list[tuple[int, int]] = []
    try:
        while True:
            for dev in ids:
                if len(held) == n:
                    break
                if any(d == dev for d, _ in held):
                    continue
                fd = os.open(directory / f"gpu{dev}.lock", os.O_CREAT | os.O_RDWR, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held.append((dev, fd))
                except BlockingIOError:
                    os.close(fd)
            if len(held) == n:
                break
            if timeout is not None and time.monotonic() - start > timeout:
                raise TimeoutError(f"no {n} free GPUs among {ids} after {timeout}s")
            time.sleep(poll_seconds)
        devices = sorted(d for d, _ in held)
        previous = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, devices))
        log.info("claimed GPU(s) %s", devices)
        try:
            yield devices
        finally:
            if previous is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = previous
    finally:
        for _, fd in held:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
