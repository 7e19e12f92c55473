"""Stopping ``manifpt run`` on SIGTERM or SIGINT (Ctrl-C) within seconds, leaving no half output.

While a job runs in process, Dagster holds the signal handlers: in a step's code a signal interrupts the step
(its temporary output is removed as the exception unwinds, ``manifpt_core.store.atomic``); between steps it is
only noted, and acted on at the next step. ``Stopper`` adds what the command needs around that: its own
handlers outside the jobs, a thread that hears every signal through the wakeup file descriptor (which Dagster
leaves alone) and marks the run in progress CANCELING, so that Dagster records it CANCELED when the
interruption reaches it, and no further job once a stop was asked. The command then exits with 128 + the
signal number (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator

import dagster as dg

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(KeyboardInterrupt):
    """A stop signal reached ``manifpt run``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def stopped_message(signum: int) -> str:
    return f"stopped by {signal.Signals(signum).name}"


class Stopper:
    """Turns SIGTERM and SIGINT into a stop of ``manifpt run``; use ``installed()``, then ``running()`` around
    each job execution."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._lock = threading.Lock()
        self._current: tuple[dg.DagsterInstance, str] | None = None

    def _note(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
            logger.warning("%s: stopping after the step in progress is interrupted", stopped_message(signum))

    def _handler(self, signum: int, _frame) -> None:
        self._note(signum)
        raise StopRequested(signum)

    def _cancel_current(self) -> None:
        with self._lock:
            if self._current is None:
                return
            instance, run_id = self._current
            run = instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished and run.status != dg.DagsterRunStatus.CANCELING:
                instance.report_run_canceling(run, message=f"manifpt run was {stopped_message(self.signum)}")

    def _watch(self, fd: int) -> None:
        while data := os.read(fd, 64):
            for signum in data:
                if signum in STOP_SIGNALS:
                    self._note(signum)
                    try:
                        self._cancel_current()
                    except Exception:  # the run's status is a courtesy: the stop itself must not fail
                        logger.exception("could not mark the run in progress as canceling")

    @contextlib.contextmanager
    def installed(self) -> Iterator[Stopper]:
        """This process's SIGINT and SIGTERM stop it (call from the main thread)."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        watcher = threading.Thread(target=self._watch, args=(read_fd,), name="manifpt-stop-watcher", daemon=True)
        watcher.start()
        for s in STOP_SIGNALS:
            signal.signal(s, self._handler)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            signal.set_wakeup_fd(previous_fd)
            os.close(write_fd)
            watcher.join(timeout=5)
            os.close(read_fd)

    @contextlib.contextmanager
    def running(self, instance: dg.DagsterInstance, run_id: str) -> Iterator[None]:
        """Around the in-process execution of run ``run_id``: not started once a stop was asked; marked CANCELING
        as soon as one is; CANCELED if the interruption ended it some other way; and no return but a
        ``StopRequested`` after a stop."""
        if self.signum is not None:
            raise StopRequested(self.signum)
        with self._lock:
            self._current = (instance, run_id)
        try:
            yield
        except BaseException:
            if self.signum is None:
                raise
            self._mark_canceled(instance, run_id)
            raise StopRequested(self.signum) from None
        finally:
            with self._lock:
                self._current = None
        if self.signum is not None:
            raise StopRequested(self.signum)

    def _mark_canceled(self, instance: dg.DagsterInstance, run_id: str) -> None:
        """A run the stop ended without Dagster recording it CANCELED (interrupted before the watcher marked it
        CANCELING, or before it started): record the stop (under the lock: the watcher does not mark it after)."""
        with self._lock:
            run = instance.get_run_by_id(run_id)
            if run is not None and run.status not in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.SUCCESS):
                instance.report_run_canceled(run, message=f"manifpt run was {stopped_message(self.signum)}")
