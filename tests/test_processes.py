"""The kit's process pools (``arena/processes.py``): no worker outlives the process that started it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from arena.processes import PARENT_POLL_S, process_pool


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # orphans' new parent may never reap them
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, within: float) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if gone(pid):
            return True
        time.sleep(0.1)
    return gone(pid)


# A parent that starts a pool (two levels: a worker whose task starts a pool of its own, as a benchmark worker's
# scoring can), prints the pids and waits to be killed.
PARENT = textwrap.dedent("""
    import sys, time
    from arena.processes import process_pool
    from tests.test_processes import nested

    with process_pool(1) as pool:
        pool.submit(nested, sys.argv[1])
        time.sleep(600)
""")


def nested(pid_file: str) -> None:
    with process_pool(1) as pool:
        pool.submit(time.sleep, 600)
        inner = next(iter(pool._processes))
        with open(pid_file + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {inner}")
        os.replace(pid_file + ".tmp", pid_file)
        time.sleep(600)


def test_workers_and_their_workers_exit_when_the_parent_is_killed(tmp_path):
    pid_file = tmp_path / "pids"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pid_file)], cwd=root)
    try:
        end = time.monotonic() + 120
        while not pid_file.exists() and time.monotonic() < end and parent.poll() is None:
            time.sleep(0.1)
        assert pid_file.exists(), "the pool's workers did not start"
        worker, inner = map(int, pid_file.read_text().split())
        assert not gone(worker) and not gone(inner)
        parent.send_signal(signal.SIGKILL)  # no clean-up runs in the parent: only the workers' own watch can help
        parent.wait()
        assert wait_gone(worker, 10 * PARENT_POLL_S), "a worker outlived its killed parent"
        assert wait_gone(inner, 10 * PARENT_POLL_S), "a worker's own worker outlived it"
    finally:
        parent.kill()
        for pid in locals().get("worker"), locals().get("inner"):
            if pid and not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_block_that_raises_terminates_its_workers_and_drops_queued_tasks(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(KeyboardInterrupt):
        with process_pool(1) as pool:
            running = pool.submit(time.sleep, 600)
            queued = pool.submit(marker.touch)
            while not running.running():
                time.sleep(0.05)
            worker = next(iter(pool._processes))
            raise KeyboardInterrupt  # Ctrl-C while waiting: Executor.__exit__ would wait out both tasks
    assert wait_gone(worker, 10), "the running task's worker was left running"
    assert queued.cancelled() or queued.exception(timeout=30) is not None  # dropped, or failed with its pool
    assert not marker.exists()


def set_variable(name: str, value: str) -> None:
    os.environ[name] = value


def variable(name: str) -> str | None:
    return os.environ.get(name)


def test_a_block_that_ends_waits_for_its_tasks_and_runs_the_initializer():
    with process_pool(2, initializer=set_variable, initargs=("ARENA_TEST_INIT", "yes")) as pool:
        values = list(pool.map(variable, ["ARENA_TEST_INIT"] * 4))
    assert values == ["yes"] * 4
