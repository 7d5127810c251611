"""Process pools whose workers never outlive the process that started them.

A ``ProcessPoolExecutor`` worker carries on with its task when its parent dies (a notebook kernel that papermill kills
on Ctrl-C, a ``kill``), and ``Executor.__exit__`` on an exception waits for every queued task. So an interrupted
``make reproduce`` left workers training and scoring on the cores a resumed run needed, and writing the same store
entries. Here each worker watches its parent and exits when it is gone (its own pool's workers then see it go), and a
block that raises, ``KeyboardInterrupt`` included, terminates the workers and drops the queued tasks. The standard
library has no such option before Python 3.14 (``terminate_workers``), and none at all for the parent's death; hence
this module.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Callable, Iterator

PARENT_POLL_S = 1.0  # how often a worker checks that its parent is alive: an orphan lingers at most this long


def _exit_when_orphaned(parent: int, every: float) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)  # no clean-up: the parent that would receive a result, or wait for this process, is gone


def _start_worker(parent: int, initializer: Callable | None, initargs: tuple) -> None:
    threading.Thread(target=_exit_when_orphaned, args=(parent, PARENT_POLL_S), daemon=True,
                     name="exit-when-orphaned").start()
    if initializer is not None:
        initializer(*initargs)


def terminate(pool) -> None:
    """Stop ``pool``'s workers now and cancel its queued tasks (what Python 3.14's ``terminate_workers`` does)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def process_pool(workers: int, initializer: Callable | None = None, initargs: tuple = (), **kwargs) -> Iterator:
    """A spawn-context ``ProcessPoolExecutor`` of ``workers`` processes (``kwargs`` go to it) whose workers exit when
    this process dies, and are terminated if the block raises; a block that ends normally waits for its tasks.
    Spawn, not fork: forking after torch or tokenizers have started threads can deadlock."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                               initargs=(os.getpid(), initializer, initargs), **kwargs)
    try:
        yield pool
    except BaseException:
        terminate(pool)
        raise
    pool.shutdown()
