"""Ctrl-C stops a run within seconds.

Two things kept Snakemake (9.x, local execution) alive after SIGINT:

- Its local executor answers SIGINT by waiting for every running job to finish on its own (``cancel`` is
  ``pool.shutdown()``); a job sees the signal only when it shares the terminal's process group, so
  ``kill -INT <snakemake pid>`` waited for whole generation jobs. :func:`stop_jobs_on_sigint` makes SIGINT
  first terminate the scheduling process's job processes (SIGTERM to every descendant, SIGKILL to what is
  left after a grace period), then raise KeyboardInterrupt as before, so Snakemake marks the jobs
  incomplete and exits. Interrupted jobs resume from the response cache on the next run.
- Each scheduling round starts a non-daemon ``threading.Timer`` of ``--max-jobs-per-timespan``'s timespan
  (60 s in ``profiles/default``), and Python waits for it before exiting: every run, finished or
  interrupted, lingered up to a minute. :func:`cancel_pending_timers` (called from the ``onsuccess`` and
  ``onerror`` hooks) cancels them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

KILL_AFTER_SECONDS = 5.0


def stop_jobs_on_sigint(kill_after: float = KILL_AFTER_SECONDS) -> None:
    """Install, in the scheduling process, a SIGINT handler that terminates its job processes first and
    then behaves like the previous handler (KeyboardInterrupt by default)."""
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> Any:
        terminate_descendants(kill_after)
        if callable(previous):
            return previous(signum, frame)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def terminate_descendants(kill_after: float = KILL_AFTER_SECONDS) -> int:
    """SIGTERM every descendant of this process now, SIGKILL the survivors after ``kill_after`` seconds
    (from a daemon timer, so nothing here blocks or delays exit). Returns how many were signalled."""
    import psutil

    try:
        children = psutil.Process(os.getpid()).children(recursive=True)
    except psutil.Error:
        return 0
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass
    if children:
        log.info("Ctrl-C: terminating %d job process(es)", len(children))

        def kill_survivors() -> None:
            for child in children:
                try:
                    if child.is_running():
                        child.kill()
                except psutil.Error:
                    pass

        timer = threading.Timer(kill_after, kill_survivors)
        timer.daemon = True
        timer.start()
    return len(children)


def cancel_pending_timers() -> int:
    """Cancel this process's pending non-daemon ``threading.Timer`` threads (Snakemake's re-scheduling
    timers), so the interpreter exits now instead of when the last one fires. Returns how many."""
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and not t.daemon]
    for timer in timers:
        timer.cancel()
    return len(timers)
