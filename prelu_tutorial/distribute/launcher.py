"""Starts worker processes on this machine, watches them, and always stops them.

Nothing here imports TensorFlow: the launcher only runs commands, reads their
logs and sends signals. The workers speak to it through lines of their
standard output that start with :data:`MARKER` (:func:`report` writes them).

Three guarantees hold on every path:

- **Bounded.** Joining, each step and the whole attempt have finite
  timeouts; a worker that fails or stalls stops the attempt, and the error
  names the worker and quotes its last log lines.
- **No orphans.** Every worker runs in a process group of its own, which the
  launcher kills when it returns or raises. If the launcher itself dies
  (SIGTERM, SIGKILL), the kernel sends each worker SIGKILL
  (``PR_SET_PDEATHSIG``), and each worker also watches its parent
  (:func:`watch_launcher`) where that signal is not available.
- **Loopback only, where the system allows it.** TensorFlow's gRPC server
  binds ``0.0.0.0:<port>`` (which gRPC widens to ``::``) whatever address
  ``TF_CONFIG`` names, and has no option to change it. So the workers run in
  a network namespace of their own whose one interface is loopback
  (:class:`LoopbackNamespace`): as root a plain network namespace, otherwise
  one inside a user namespace, where the kernel allows unprivileged ones.
  :func:`can_isolate` says whether this machine can.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prelu_tutorial._number_checks import check_int, check_real

__all__ = [
    "EXIT_DISAGREE",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "EXIT_WORKER_FAILED",
    "MARKER",
    "DistributeError",
    "LoopbackNamespace",
    "Outcome",
    "WorkerError",
    "WorkerTimeoutError",
    "can_isolate",
    "check_kill",
    "check_timeouts",
    "free_ports",
    "report",
    "run_workers",
    "tf_config",
    "watch_launcher",
]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_WORKER_FAILED = 3
EXIT_TIMEOUT = 4
EXIT_DISAGREE = 5

MARKER = "@@distribute "
"""The start of every line a worker writes for the launcher."""

LOG_TAIL_LINES = 12
POLL_SECONDS = 0.05


class DistributeError(RuntimeError):
    """A multi-worker job failed; ``exit_code`` is what the CLI returns for it."""

    exit_code = EXIT_WORKER_FAILED


class WorkerError(DistributeError):
    """A worker exited with an error.

    Attributes:
        worker: The worker's index in the cluster.
        returncode: Its exit status (negative: killed by that signal).
        log_tail: Its last log lines.
        exception: The first line of the last Python exception in its log
            (``"ValueError: ..."``), or ``None`` if the log shows none.
    """

    exit_code = EXIT_WORKER_FAILED

    def __init__(
        self, worker: int, returncode: int, log_tail: list[str], exception: str | None = None
    ):
        self.worker = worker
        self.returncode = returncode
        self.log_tail = log_tail
        self.exception = exception
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited {returncode}"
        super().__init__(f"worker {worker} {how}; its last log lines:\n" + "\n".join(log_tail))


class WorkerTimeoutError(DistributeError):
    """A worker did not join the cluster, or stopped making progress, in time.

    Attributes:
        worker: The worker's index in the cluster.
        log_tail: Its last log lines.
    """

    exit_code = EXIT_TIMEOUT

    def __init__(self, worker: int, reason: str, log_tail: list[str]):
        self.worker = worker
        self.log_tail = log_tail
        super().__init__(f"worker {worker} {reason}; its last log lines:\n" + "\n".join(log_tail))


def report(kind: str, text: str = "") -> None:
    """Writes one line for the launcher to standard output; what a worker calls.

    Args:
        kind: ``started`` (the worker runs), ``joined`` (it reached every
            other worker), ``step`` (``text`` is the steps done), ``paused``
            (it holds still after step ``text`` to be killed), ``epoch``
            (``text`` is relayed to the job's progress, from worker 0 only)
            or ``done`` (its results are written).
        text: What goes with it.
    """
    print(f"{MARKER}{kind} {text}".rstrip(), flush=True)


# ----------------------------------------------------------------------------- the cluster


def free_ports(count: int) -> list[int]:
    """Asks the kernel for ``count`` distinct free TCP ports on 127.0.0.1.

    The sockets are held open until all ports are chosen (so no port comes
    twice) and then closed, so a worker can bind them; another program could
    in principle take one in between, which makes the job fail to start, not
    train wrongly.

    Args:
        count: How many ports, at least 1.

    Returns:
        The port numbers.

    Raises:
        TypeError: If ``count`` is not an integer.
        ValueError: If ``count < 1``.
    """
    count = check_int(count, "count", minimum=1, owner="free_ports")
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports: Sequence[int], index: int) -> dict[str, Any]:
    """The ``TF_CONFIG`` of worker ``index`` in a loopback cluster.

    Args:
        ports: One port per worker; worker ``i`` is reached at ``127.0.0.1:ports[i]``.
        index: This worker's place in the list; worker 0 is the chief.

    Returns:
        ``{"cluster": {"worker": [...addresses...]}, "task": {"type": "worker",
        "index": index}}``, ready for ``json.dumps``.

    Raises:
        TypeError: If ``index`` is not an integer (a bool included).
        ValueError: If ``ports`` is empty or repeats a port, or ``index`` is
            not a position in it.
    """
    ports = list(ports)
    if not ports or len(set(ports)) != len(ports):
        raise ValueError(f"tf_config: ports must be distinct and not empty, got {ports!r}.")
    if check_int(index, "index", owner="tf_config") >= len(ports):
        raise ValueError(f"tf_config: index must be between 0 and {len(ports) - 1}, got {index!r}.")
    return {
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
        "task": {"type": "worker", "index": index},
    }


# ----------------------------------------------------------------------------- dying together

_PR_SET_PDEATHSIG = 1
"""prctl(2)'s option: the signal this process gets when its parent dies (Linux)."""

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000


def _libc() -> Any:
    """The C library, for prctl, unshare and setns (Linux only)."""
    return ctypes.CDLL(None, use_errno=True)


def _prepare_child(launcher_pid: int, namespaces: Sequence[tuple[int, int]]) -> Callable[[], None]:
    """A ``preexec_fn``: join the namespaces, then die with the launcher.

    The death signal is set last, after every change of namespace (the
    kernel clears it when a process's credentials change). If the launcher
    died between the fork and this call, the child exits at once.

    Args:
        launcher_pid: The process the child must not outlive.
        namespaces: ``(open file descriptor, CLONE_NEW* flag)`` pairs, in the
            order to join them (the user namespace first).
    """
    libc = _libc() if sys.platform.startswith("linux") else None  # loaded before the fork

    def prepare() -> None:
        for descriptor, kind in namespaces:
            if libc.setns(descriptor, kind) != 0:
                raise OSError(ctypes.get_errno(), "setns into the workers' namespace failed")
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != launcher_pid:
            os._exit(1)

    return prepare


def watch_launcher(launcher_pid: int, every_seconds: float = 1.0) -> None:
    """Kills this process (SIGKILL) soon after ``launcher_pid`` stops being its parent.

    A worker calls this first: a fallback for systems without
    ``PR_SET_PDEATHSIG``. It runs in a daemon thread and returns at once.

    Args:
        launcher_pid: The parent to watch.
        every_seconds: How often to look.
    """

    def watch() -> None:
        while os.getppid() == launcher_pid:
            time.sleep(every_seconds)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="watch-launcher", daemon=True).start()


# ----------------------------------------------------------------------------- loopback only

_HOLDER = """
import ctypes, fcntl, os, signal, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
uid, gid, user_namespace = os.getuid(), os.getgid(), sys.argv[2] == "1"
flags = 0x40000000 | (0x10000000 if user_namespace else 0)  # CLONE_NEWNET [| CLONE_NEWUSER]
if libc.unshare(flags) != 0:
    sys.exit("unshare: " + os.strerror(ctypes.get_errno()))
if user_namespace:
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                       ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as mapping:
            mapping.write(text)
libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit("the launcher is gone")
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
request = struct.pack("16sH14s", b"lo", 0, b"")
lo_flags = struct.unpack("16sH14s", fcntl.ioctl(probe, 0x8913, request))[1]  # SIOCGIFFLAGS
fcntl.ioctl(probe, 0x8914, struct.pack("16sH14s", b"lo", lo_flags | 1, b""))  # SIOCSIFFLAGS up
print("ready", flush=True)
sys.stdin.read()  # holds the namespaces until the launcher closes the pipe or dies
"""
"""The holder: makes the namespaces, brings loopback up, and keeps them until told."""


class LoopbackNamespace:
    """A network namespace whose one interface is loopback; workers started in it see no other.

    A small process (the holder) creates it and keeps it: as root, a network
    namespace; otherwise a user namespace with a network namespace inside,
    which needs the kernel to allow unprivileged user namespaces. Workers
    join it before they run (:meth:`join_before_exec`); they reach each other
    on 127.0.0.1 as usual, and nothing outside can reach them.

    Args:
        user_namespace: Whether the network namespace lives in a user
            namespace of its own; ``None`` does so unless this process is root.
        ready_timeout: Seconds the holder has to bring loopback up.

    Raises:
        OSError: If this system cannot make the namespace (the message says why).
    """

    def __init__(self, user_namespace: bool | None = None, ready_timeout: float = 10.0):
        if not sys.platform.startswith("linux"):
            raise OSError("network namespaces need Linux")
        if user_namespace is None:
            user_namespace = os.getuid() != 0
        self.holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(os.getpid()), str(int(user_namespace))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._descriptors: list[tuple[int, int]] = []
        first_line: list[bytes] = []
        answered = threading.Event()

        def read_first_line() -> None:
            first_line.append(self.holder.stdout.readline())
            answered.set()

        threading.Thread(target=read_first_line, daemon=True).start()
        answered.wait(ready_timeout)
        if first_line != [b"ready\n"]:
            self.holder.kill()
            why = self.holder.communicate(timeout=30)[1].decode(errors="replace").split("\n")
            why = [line for line in why if line.strip()]
            raise OSError(
                "the workers' network namespace did not come up"
                + (f": {why[-1]}" if why else f" within {ready_timeout:g} s")
            )
        try:
            kinds = [("net", _CLONE_NEWNET)]
            if user_namespace:
                kinds.insert(0, ("user", _CLONE_NEWUSER))
            for name, kind in kinds:
                path = f"/proc/{self.holder.pid}/ns/{name}"
                self._descriptors.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), kind))
        except OSError:
            self.close()
            raise

    def join_before_exec(self, launcher_pid: int) -> Callable[[], None]:
        """A ``preexec_fn`` that puts the child in this namespace and ties it to the launcher."""
        return _prepare_child(launcher_pid, self._descriptors)

    def close(self) -> None:
        """Ends the holder; the namespace goes when its last worker has gone too."""
        for descriptor, _ in self._descriptors:
            os.close(descriptor)
        self._descriptors = []
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait(timeout=30)
        for pipe in (self.holder.stdin, self.holder.stdout, self.holder.stderr):
            pipe.close()


@functools.cache
def can_isolate() -> bool:
    """Whether this machine can run the workers in a loopback-only namespace (tried once).

    True on Linux as root, or as another user where the kernel allows
    unprivileged user namespaces (and no security module takes their
    capabilities away). The answer is found by making one and is kept for
    the life of the process.
    """
    try:
        LoopbackNamespace().close()
    except OSError:
        return False
    return True


# ----------------------------------------------------------------------------- supervising


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen
    log_path: Path
    log_offset: int = 0
    partial_line: str = ""
    started: bool = False
    joined: bool = False
    step: int = -1
    last_progress: float = 0.0
    paused_at: int | None = None
    done: bool = False
    lines: list[str] = field(default_factory=list)
    exception: str | None = None
    in_traceback: bool = False

    def read_new_lines(self) -> list[str]:
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            log.seek(self.log_offset)
            text = log.read()
            self.log_offset = log.tell()
        text = self.partial_line + text
        *complete, self.partial_line = text.split("\n")
        self.lines = (self.lines + complete)[-200:]
        for line in complete:
            # A traceback's frames are indented; its first unindented line names the exception.
            if line.startswith("Traceback (most recent call last)"):
                self.in_traceback = True
            elif self.in_traceback and line and not line.startswith((" ", "\t")):
                self.exception, self.in_traceback = line.rstrip(), False
        return complete

    def tail(self) -> list[str]:
        self.read_new_lines()
        lines = self.lines + ([self.partial_line] if self.partial_line else [])
        return [line.rstrip() for line in lines if line.strip()][-LOG_TAIL_LINES:]

    def take_reports(self, now: float, progress: Callable[[str], None] | None) -> None:
        """Reads the worker's new report lines (see :func:`report`) into this record."""
        for line in self.read_new_lines():
            if not line.startswith(MARKER):
                continue
            kind, _, rest = line[len(MARKER) :].partition(" ")
            self.last_progress = now
            if kind == "started":
                self.started = True
            elif kind == "joined":
                self.joined = True
            elif kind == "step":
                self.step = int(rest)
            elif kind == "paused":
                self.paused_at = int(rest)
            elif kind == "epoch" and self.index == 0 and progress is not None:
                progress(rest)
            elif kind == "done":
                self.done = True


def _stop(workers: Sequence[_Worker], grace_seconds: float = 3.0) -> None:
    """Ends every worker's whole process group: SIGTERM, then SIGKILL after the grace time.

    The SIGKILL round always runs, so a child that ignores SIGTERM, or outlives
    its worker, dies with the group too.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for worker in workers:
            try:
                os.killpg(worker.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace_seconds
        for worker in workers:
            try:
                worker.process.wait(timeout=max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


@dataclass
class Outcome:
    """How an attempt ended without an error.

    Attributes:
        killed: ``(worker, step)`` if the launcher killed that worker on
            purpose after that step, else ``None`` (every worker was done).
        killed_tail: The killed worker's last log lines.
    """

    killed: tuple[int, int] | None
    killed_tail: list[str] = field(default_factory=list)


def check_timeouts(owner: str, **timeouts: float) -> None:
    """Every timeout is a finite number of seconds > 0 (NaN would switch it off).

    Raises:
        TypeError: If one is not a real number.
        ValueError: If one is NaN, infinite, zero or negative.
    """
    for name, value in timeouts.items():
        check_real(value, name, owner=owner, minimum=0.0, inclusive=False)


def check_kill(
    kill_worker: int | None,
    at_step: int | None,
    workers: int,
    *,
    owner: str,
    steps: int | None = None,
) -> None:
    """The planned kill: both or neither; a worker's index and a step after which to kill it.

    Args:
        kill_worker: The worker to kill, or ``None``.
        at_step: The step after which to kill it, or ``None``.
        workers: How many workers there are.
        owner: The function named in the messages.
        steps: If given, the job's number of steps: ``at_step`` must come before the last.

    Raises:
        TypeError: If either is given but not an integer.
        ValueError: If only one is given, or either is out of range.
    """
    if (kill_worker is None) != (at_step is None):
        raise ValueError(
            f"{owner}: give kill_worker and at_step together, got kill_worker={kill_worker!r} "
            f"and at_step={at_step!r}."
        )
    if kill_worker is None:
        return
    if check_int(kill_worker, "kill_worker", owner=owner) >= workers:
        raise ValueError(
            f"{owner}: kill_worker must be between 0 and {workers - 1}, got {kill_worker!r}."
        )
    check_int(at_step, "at_step", minimum=1, owner=owner)
    if steps is not None and at_step >= steps:
        raise ValueError(f"{owner}: at_step must be between 1 and {steps - 1}, got {at_step!r}.")


def run_workers(
    commands: Sequence[Sequence[str]],
    envs: Sequence[dict[str, str]],
    log_dir: str | os.PathLike,
    *,
    join_timeout: float = 180.0,
    stall_timeout: float = 120.0,
    timeout: float = 900.0,
    kill_worker: int | None = None,
    at_step: int | None = None,
    progress: Callable[[str], None] | None = None,
    isolate: bool | None = None,
) -> Outcome:
    """Runs one attempt of a job: starts the workers, watches them, always stops them.

    Each worker's standard output and error go to ``log_dir/worker-<i>.log``;
    the launcher follows its :func:`report` lines there. Every worker runs
    in its own session, so stopping a worker kills its whole process group,
    children included.

    Args:
        commands: One command line per worker.
        envs: One environment per worker.
        log_dir: Where the workers' logs go.
        join_timeout: Seconds from the start until every worker must have joined.
        stall_timeout: Seconds a joined worker may go without reporting progress.
        timeout: Seconds the whole attempt may take.
        kill_worker: A worker to SIGKILL once it reports ``paused <at_step>``.
        at_step: See ``kill_worker``.
        progress: Called with each epoch line of worker 0.
        isolate: Run the workers in a :class:`LoopbackNamespace`; ``None``
            does so where :func:`can_isolate`.

    Returns:
        An :class:`Outcome`: ``killed`` is ``(worker, step)`` if the kill
        happened (the other workers were then stopped), else ``None`` (every
        worker exited 0 after reporting ``done``).

    Raises:
        WorkerError: If a worker exits with an error (or without ``done``).
        WorkerTimeoutError: If a worker does not join or stalls, or time runs out.
        TypeError, ValueError: If a timeout is not a finite number of seconds > 0,
            there are no commands or not one environment per command, or
            ``kill_worker``/``at_step`` are wrong (see :func:`check_kill`).
        OSError: If ``isolate=True`` and the namespace cannot be made.
    """
    check_timeouts(
        "run_workers", join_timeout=join_timeout, stall_timeout=stall_timeout, timeout=timeout
    )
    if not commands or len(commands) != len(envs):
        raise ValueError(
            f"run_workers: give one environment per command, and at least one command; got "
            f"{len(commands)} commands and {len(envs)} environments."
        )
    check_kill(kill_worker, at_step, len(commands), owner="run_workers")
    if isolate is None:
        isolate = can_isolate()
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    workers: list[_Worker] = []
    namespace = LoopbackNamespace() if isolate else None
    prepare = (
        namespace.join_before_exec(os.getpid()) if namespace else _prepare_child(os.getpid(), ())
    )
    start = time.monotonic()
    try:
        for index, (command, env) in enumerate(zip(commands, envs, strict=True)):
            log_path = log_dir / f"worker-{index}.log"
            with open(log_path, "w", encoding="utf-8") as log:
                process = subprocess.Popen(
                    list(command),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=prepare,
                )
            workers.append(_Worker(index, process, log_path, last_progress=start))
        while True:
            now = time.monotonic()
            for worker in workers:
                worker.take_reports(now, progress)
            if kill_worker is not None:
                target = workers[kill_worker]
                if target.paused_at is not None and target.paused_at == at_step:
                    os.killpg(target.process.pid, signal.SIGKILL)
                    target.process.wait(timeout=30)
                    return Outcome(killed=(kill_worker, at_step), killed_tail=target.tail())
            for worker in workers:
                returncode = worker.process.poll()
                if returncode is not None and (returncode != 0 or not worker.done):
                    tail = worker.tail()
                    raise WorkerError(worker.index, returncode, tail, worker.exception)
            if all(worker.process.poll() == 0 and worker.done for worker in workers):
                return Outcome(killed=None)
            _raise_if_late(workers, start, now, join_timeout, stall_timeout, timeout)
            time.sleep(POLL_SECONDS)
    finally:
        _stop(workers)
        if namespace is not None:
            namespace.close()


def _raise_if_late(
    workers: Sequence[_Worker],
    start: float,
    now: float,
    join_timeout: float,
    stall_timeout: float,
    timeout: float,
) -> None:
    """Raises :class:`WorkerTimeoutError` for the first bound that ran out, naming the worker."""
    elapsed = now - start
    if elapsed > join_timeout and not all(w.joined for w in workers):
        # A worker that never started keeps the others waiting: name it first.
        culprit = next((w for w in workers if not w.started), None)
        what = "did not start"
        if culprit is None:
            culprit = next(w for w in workers if not w.joined)
            what = "did not join the cluster"
        raise WorkerTimeoutError(culprit.index, f"{what} within {join_timeout:g} s", culprit.tail())
    for worker in workers:
        if worker.joined and not worker.done and now - worker.last_progress > stall_timeout:
            raise WorkerTimeoutError(
                worker.index,
                f"made no progress for {stall_timeout:g} s (last step {worker.step})",
                worker.tail(),
            )
    if elapsed > timeout:
        slowest = min(workers, key=lambda w: (w.done, w.step))
        raise WorkerTimeoutError(
            slowest.index, f"did not finish within {timeout:g} s", slowest.tail()
        )
