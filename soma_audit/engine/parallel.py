"""Inventory-only checks of a large scan shared with a forked copy of the process.

Checks are pure-Python work on the inventory: threads take turns on one core (the GIL),
so on a cluster of tens of thousands of objects they are the longest step after the LISTs.
A fork gets a second core without copying anything up front: the child sees the same
inventory (pages are copied only as it touches them), draws checks from the same queue
as the parent, and sends back its outcomes. Only checks that read nothing but the
inventory go to the child: a live service's connection must not be used from two
processes.

The queue is a pipe holding every check's index as two bytes, written before the fork:
reads of two bytes from a pipe are atomic, so each check is drawn exactly once, by
whichever process is free first. A child that dies leaves its checks to the parent.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

#: Below this many objects a scan's checks take a few tens of milliseconds, less than
#: a fork and its copied pages cost.
FORK_FROM_OBJECTS = 5_000
_INDEX = struct.Struct("<H")
_LENGTH = struct.Struct("<Q")


def can_fork(objects: int) -> bool:
    """Whether sharing checks with a fork pays and is safe: a large inventory, a second
    core, and no other thread (a fork copies only the calling thread; a lock another
    thread holds would stay locked in the child)."""
    return (objects >= FORK_FROM_OBJECTS and hasattr(os, "fork")
            and len(os.sched_getaffinity(0)) >= 2 and threading.active_count() == 1)


def run_shared(indexes: Sequence[int], run: Callable[[int], T]) -> dict[int, T]:
    """``run(i)`` for every index, shared between this process and a forked child."""
    if len(set(indexes)) != len(indexes) or any(not 0 <= i <= 0xFFFF for i in indexes):
        raise ValueError("indexes must be distinct and fit in two bytes")
    queue_read, queue_write = os.pipe()
    os.write(queue_write, b"".join(_INDEX.pack(i) for i in indexes))
    os.close(queue_write)
    results_read, results_write = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(results_read)
        _child(queue_read, results_write, run, parent)
    os.close(results_write)
    done: dict[int, T] = {}
    try:
        for index in _drawn(queue_read):
            done[index] = run(index)
        done.update(_received(results_read))
    finally:
        os.close(queue_read)
        os.close(results_read)
        os.waitpid(pid, 0)
    for index in indexes:  # what a child that died had drawn
        if index not in done:
            done[index] = run(index)
    return done


def _drawn(queue: int, parent: int | None = None) -> Iterator[int]:
    """Indexes drawn from the queue until it is empty (or, in the child, until the
    parent is gone: it was killed, and nobody waits for the outcomes)."""
    while (parent is None or os.getppid() == parent) and (chunk := os.read(queue, _INDEX.size)):
        yield _INDEX.unpack(chunk)[0]


def _child(queue: int, results: int, run: Callable[[int], T], parent: int) -> None:
    """Draw and run checks, then send all outcomes at once; leave without running the
    parent's exit handlers or signal handlers (they clean up the parent's files)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        outcomes = {index: run(index) for index in _drawn(queue, parent)}
        data = pickle.dumps(outcomes, pickle.HIGHEST_PROTOCOL)
        with os.fdopen(results, "wb") as pipe:
            pipe.write(_LENGTH.pack(len(data)) + data)
    finally:
        os._exit(0)


def _received(results: int) -> dict[int, T]:
    """The child's outcomes; empty if it died before sending them."""
    with os.fdopen(results, "rb", closefd=False) as pipe:
        header = pipe.read(_LENGTH.size)
        if len(header) != _LENGTH.size:
            return {}
        (length,) = _LENGTH.unpack(header)
        data = pipe.read(length)
    if len(data) != length:
        return {}
    outcomes: dict[int, T] = pickle.loads(data)  # our own child's bytes
    return outcomes
