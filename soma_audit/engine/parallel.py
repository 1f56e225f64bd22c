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
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from soma_audit.core.forking import ForkedCall, can_fork

T = TypeVar("T")

#: Below this many objects a scan's checks take a few tens of milliseconds, less than
#: a fork and its copied pages cost.
FORK_FROM_OBJECTS = 5_000
_INDEX = struct.Struct("<H")


def worth_forking(objects: int) -> bool:
    """Whether sharing a scan's checks with a fork pays (a large inventory) and is safe."""
    return objects >= FORK_FROM_OBJECTS and can_fork()


def run_shared(indexes: Sequence[int], run: Callable[[int], T]) -> dict[int, T]:
    """``run(i)`` for every index, shared between this process and a forked child."""
    if len(set(indexes)) != len(indexes) or any(not 0 <= i <= 0xFFFF for i in indexes):
        raise ValueError("indexes must be distinct and fit in two bytes")
    queue_read, queue_write = os.pipe()
    os.write(queue_write, b"".join(_INDEX.pack(i) for i in indexes))
    os.close(queue_write)
    try:
        child = ForkedCall.start(lambda: {index: run(index) for index in _drawn(queue_read)})
        done = {index: run(index) for index in _drawn(queue_read)}
        done.update(child.result() or {})
    finally:
        os.close(queue_read)
    for index in indexes:  # what a child that died had drawn
        if index not in done:
            done[index] = run(index)
    return done


def _drawn(queue: int) -> Iterator[int]:
    """Indexes drawn from the queue until it is empty."""
    while chunk := os.read(queue, _INDEX.size):
        yield _INDEX.unpack(chunk)[0]
