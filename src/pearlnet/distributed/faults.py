"""Ending a job cleanly when one rank fails.

A rank that raises while the others wait in a collective would leave them waiting forever.
``install_abort_hook`` (installed by ``world()``, as ChainerMN installs its global except
hook) prints the failing rank's traceback, prefixed with its rank, and calls MPI_Abort, which
ends every process of the job with a non-zero exit. ``fail_together`` does the same for an
exception inside a data-parallel section that the caller might catch: once ranks are in
lockstep, only a ``CollectiveError`` (raised by every rank together) may pass.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from typing import Any, Iterator

from .communicator import CollectiveError, Communicator

__all__ = ["install_abort_hook", "fail_together", "report_and_abort"]

_installed = False


def report_and_abort(comm: Communicator, exc_type: Any, exc: Any, tb: Any) -> None:
    """Print the traceback as rank r of n, then MPI_Abort every process of the job."""
    try:
        lines = traceback.format_exception(exc_type, exc, tb)
        head = f"pearlnet.distributed: rank {comm.rank} of {comm.size} failed; ending the job\n"
        sys.stderr.write(head + "".join(f"[rank {comm.rank}] {line}"
                                        for chunk in lines for line in chunk.splitlines(True)))
        sys.stderr.flush()
    finally:
        comm.abort(1)


def install_abort_hook(comm: Communicator) -> None:
    """Make an uncaught exception on this rank end the whole job (idempotent)."""
    global _installed
    if _installed:
        return
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, (KeyboardInterrupt, SystemExit)) and comm.size == 1:
            return previous(exc_type, exc, tb)
        report_and_abort(comm, exc_type, exc, tb)

    sys.excepthook = hook
    _installed = True


@contextlib.contextmanager
def fail_together(comm: Communicator) -> Iterator[None]:
    """Inside: an exception on one rank aborts the job (the others cannot know of it), unless
    it is a CollectiveError, which every rank raises at the same point."""
    if comm.size == 1:
        yield
        return
    try:
        yield
    except CollectiveError:
        raise
    except BaseException:
        report_and_abort(comm, *sys.exc_info())
        raise  # not reached: abort ends the process
