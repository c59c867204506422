"""Counts a process's established TCP connections to given ports, from /proc (no tools)."""

from __future__ import annotations

import os


def established_connections(pid: int, ports: set[int]) -> int:
    """Established TCP connections from ``pid`` to any of ``ports``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[3] == "01" and fields[9] in inodes and remote_port in ports:
                    count += 1
    return count
