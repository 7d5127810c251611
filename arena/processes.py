"""Process pools whose workers never outlive the process that started them.

A ``ProcessPoolExecutor`` worker carries on with its task when its parent dies (a notebook kernel that papermill kills
on Ctrl-C, a ``kill``), and ``Executor.__exit__`` on an exception waits for every queued task. So an interrupted
``make reproduce`` left workers training and scoring on the cores a resumed run needed, and writing the same store
entries. Here each worker watches its parent and exits when it is gone (its own pool's workers then see it go), and a
block that is interrupted terminates the workers and drops the queued tasks (an ordinary error too, unless the caller
asks for its other tasks to finish). The standard
library has no such option before Python 3.14 (``terminate_workers``), and none at all for the parent's death; hence
this module. A pool also counts its unfinished tasks, so a worker can tell when a peer has nothing left to do
(``idle_peer``): the benchmark's last method then scores with the idle core's help.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Callable, Iterator

PARENT_POLL_S = 1.0  # how often a worker checks that its parent is alive: an orphan lingers about this long per level

# In a process_pool worker: its pool's count of submitted tasks not yet finished (shared), and how many of its workers
# can run at once (the pool's size, at most the usable cores).
_unfinished = None
_running = 0


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def idle_peer() -> bool:
    """Whether this process is a ``process_pool`` worker whose pool has fewer unfinished tasks than workers (counted
    up to the usable cores), so a core is free while this task runs, unless more tasks are submitted."""
    return _unfinished is not None and _unfinished.value < _running


def _exit_when_orphaned(parent: int, every: float) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)  # no clean-up: the parent that would receive a result, or wait for this process, is gone


def _start_worker(parent: int, unfinished, workers: int, initializer: Callable | None, initargs: tuple) -> None:
    global _unfinished, _running
    _unfinished, _running = unfinished, min(workers, usable_cores())
    threading.Thread(target=_exit_when_orphaned, args=(parent, PARENT_POLL_S), daemon=True,
                     name="exit-when-orphaned").start()
    if initializer is not None:
        initializer(*initargs)


def _counted(fn: Callable, args: tuple, kwargs: dict):
    try:
        return fn(*args, **kwargs)
    finally:
        with _unfinished.get_lock():
            _unfinished.value -= 1


def terminate(pool, within: float = 30.0) -> None:
    """Stop ``pool``'s workers now (what Python 3.14's ``terminate_workers`` does): queued tasks are cancelled, those
    already handed to a worker fail with ``BrokenProcessPool``. Workers the executor starts meanwhile (a replacement,
    under ``max_tasks_per_child``) are stopped too, until its manager thread ends or ``within`` seconds pass."""
    processes = getattr(pool, "_processes", None)  # the executor's own dict (shutdown forgets it), even when empty:
    processes = {} if processes is None else processes  # a replacement worker is added to it while we wait
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    end = time.monotonic() + within
    while True:
        for process in list(processes.values()):
            process.terminate()
        if manager is None or not manager.is_alive() or time.monotonic() > end:
            return
        manager.join(0.1)


@contextlib.contextmanager
def process_pool(workers: int, initializer: Callable | None = None, initargs: tuple = (),
                 finish_on_error: bool = False, **kwargs) -> Iterator:
    """A spawn-context ``ProcessPoolExecutor`` of ``workers`` processes (``kwargs`` go to it) whose workers exit when
    this process dies. A block that ends waits for its tasks; one that is interrupted (``KeyboardInterrupt``,
    ``SystemExit``) terminates them, and so does one that raises an error unless ``finish_on_error``: then the tasks
    running and queued finish first (a benchmark keeps its other methods' results when one fails). Its tasks are
    counted for ``idle_peer``. Spawn, not fork: forking after torch or tokenizers have started threads can
    deadlock."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    spawn = multiprocessing.get_context("spawn")
    unfinished = spawn.Value("i", 0)

    class CountingPool(ProcessPoolExecutor):
        def submit(self, fn, /, *args, **kw):  # Executor.map submits through here too
            with unfinished.get_lock():
                unfinished.value += 1
            try:
                return super().submit(_counted, fn, args, kw)
            except BaseException:
                with unfinished.get_lock():
                    unfinished.value -= 1
                raise

    pool = CountingPool(workers, mp_context=spawn, initializer=_start_worker,
                        initargs=(os.getpid(), unfinished, workers, initializer, initargs), **kwargs)
    try:
        try:
            yield pool
        except Exception:
            if not finish_on_error:
                raise
            pool.shutdown()  # an interrupt while waiting here still terminates them (the outer handler)
            raise
        pool.shutdown()
    except BaseException:
        terminate(pool)
        raise
