"""Helpers for the tests that start processes: is a pid alive, what listens where.

Read from /proc, so they need no psutil; Linux only, like the launcher's guarantees.
"""

import glob
import subprocess
from pathlib import Path


def alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_line(pid: int) -> bytes:
    """The command line of ``pid``, its arguments joined by spaces; empty once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
    except OSError:
        return b""


def pids_running(fragment: bytes) -> list[int]:
    """The live processes whose command line contains ``fragment``."""
    pids = [int(path.split("/")[2]) for path in glob.glob("/proc/[0-9]*/cmdline")]
    return [pid for pid in pids if fragment in command_line(pid) and alive(pid)]


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether ``ancestor`` is ``pid``'s parent, or its parent's, and so on up to init."""
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            return False
        if pid == ancestor:
            return True
    return False


def listening(proc: str = "/proc/self") -> set[tuple[str, int]]:
    """``(address, port)`` of every listening TCP socket in the network namespace of ``proc``.

    Addresses are as /proc/net/tcp{,6} write them (hex), e.g.
    ``00000000000000000000000000000000`` for ``::`` and ``0100007F`` for 127.0.0.1.
    """
    sockets = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            rows = Path(proc, table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A":  # TCP_LISTEN
                address, port = fields[1].rsplit(":", 1)
                sockets.add((address, int(port, 16)))
    return sockets


def interfaces(proc: str = "/proc/self") -> set[str]:
    """The network interfaces of the namespace of ``proc``, from its net/dev."""
    rows = Path(proc, "net/dev").read_text().splitlines()[2:]
    return {row.split(":", 1)[0].strip() for row in rows}


def network_namespace(proc: str = "/proc/self") -> str:
    """The network namespace of ``proc``, e.g. ``net:[4026531833]``."""
    return str(Path(proc, "ns/net").readlink())


def stop(processes: list[subprocess.Popen]) -> None:
    """Kills whichever of ``processes`` still runs (after a timeout), and reaps it."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
