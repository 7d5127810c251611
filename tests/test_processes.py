"""The kit's process pools (``arena/processes.py``): no worker outlives the process that started it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from arena.processes import idle_peer, PARENT_POLL_S, process_pool


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


def test_a_block_that_is_interrupted_terminates_its_workers_and_their_tasks(tmp_path):
    from concurrent.futures import wait

    marker = tmp_path / "ran"
    with pytest.raises(KeyboardInterrupt):
        with process_pool(1) as pool:
            running = pool.submit(time.sleep, 30)
            queued = pool.submit(marker.touch)
            while not running.running():
                time.sleep(0.05)
            worker = next(iter(pool._processes))
            raise KeyboardInterrupt  # Ctrl-C while waiting: Executor.__exit__ would wait out both tasks
    assert wait_gone(worker, 10), "the running task's worker was left running"
    wait([queued], timeout=30)
    assert queued.cancelled() or queued.exception() is not None  # cancelled, or failed with its pool
    assert not marker.exists()


def touch_after(path: str, seconds: float) -> None:
    time.sleep(seconds)
    open(path, "w").close()


def test_an_error_terminates_the_tasks_unless_they_should_finish(tmp_path):
    for finish in (False, True):
        marker = tmp_path / f"finished-{finish}"
        with pytest.raises(ValueError):
            with process_pool(1, finish_on_error=finish) as pool:
                started = pool.submit(touch_after, str(marker), 2)
                while not started.running():
                    time.sleep(0.05)
                raise ValueError("one method failed")
        time.sleep(3 if not finish else 0)  # a task that was not stopped would have finished by now
        assert marker.exists() is finish


def set_variable(name: str, value: str) -> None:
    os.environ[name] = value


def variable(name: str) -> str | None:
    return os.environ.get(name)


def test_a_block_that_ends_waits_for_its_tasks_and_runs_the_initializer(tmp_path):
    with process_pool(2, initializer=set_variable, initargs=("ARENA_TEST_INIT", "yes")) as pool:
        values = list(pool.map(variable, ["ARENA_TEST_INIT"] * 4))
        pool.submit(touch_after, str(tmp_path / "waited"), 1)  # not waited for in the block
    assert values == ["yes"] * 4
    assert (tmp_path / "waited").exists()


def wait_for(path: str) -> None:
    end = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.05)


def test_usable_cores_are_the_cores_this_process_may_run_on():
    from arena.processes import usable_cores

    assert usable_cores() == len(psutil.Process().cpu_affinity())


def test_a_worker_sees_an_idle_peer_only_when_its_pool_has_fewer_tasks_left_than_workers(tmp_path):
    assert not idle_peer()  # not a pool worker
    release = str(tmp_path / "release")
    with process_pool(2) as pool:
        blocker = pool.submit(wait_for, release)
        busy = pool.submit(idle_peer).result()  # runs in the other worker while the blocker holds the first
        mapped = list(pool.map(idle_peer_of, range(1)))  # map's tasks are counted too
        (tmp_path / "release").touch()
        blocker.result()
        alone = pool.submit(idle_peer).result()  # the only task left: the other worker idles
    assert (busy, mapped, alone) == (False, [False], True)
    with process_pool(1) as pool:
        assert pool.submit(idle_peer).result() is False  # one worker has no peer


def idle_peer_of(_: int) -> bool:
    return idle_peer()


def spare_core_in_a_benchmark_worker() -> bool:
    os.environ["ARENA_WORKER"] = "1"  # as benchmark._worker_init sets it
    from arena.evaluate import spare_core

    return spare_core()


def test_a_benchmark_worker_scores_aside_only_while_its_peer_idles(tmp_path):
    from arena.evaluate import spare_core

    if not spare_core():
        pytest.skip("one CPU core: nothing is scored aside")
    release = str(tmp_path / "release")
    with process_pool(2) as pool:
        blocker = pool.submit(wait_for, release)
        busy = pool.submit(spare_core_in_a_benchmark_worker).result()
        (tmp_path / "release").touch()
        blocker.result()
        alone = pool.submit(spare_core_in_a_benchmark_worker).result()
    assert (busy, alone) == (False, True)
