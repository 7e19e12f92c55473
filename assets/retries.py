"""Which step failures Dagster retries: transient ones (a full disk, a lost Dask worker, CUDA out of memory),
not bad input or a store that contradicts the step (``InputError``, ``StoreError``), which fail at once, nor
a step interrupted by a signal (the run is being stopped).

Every pipeline asset is declared with ``step_asset`` instead of ``dg.asset``: the same arguments, plus the
retry policy and the boundary that turns ``InputError`` and ``StoreError`` into a ``dg.Failure`` that the
policy does not retry, with the error's message as its description.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster._core.errors import DagsterError, DagsterExecutionInterruptedError

from manifpt_core.errors import InputError, StoreError

# Two more attempts, 10 s then 20 s later (±50 % so that parallel runs do not retry in step): long enough for
# a transient condition (a file system hiccup, memory freed by another run) to pass, short beside a step.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
NOT_RETRIED = (InputError, StoreError)  # retrying cannot fix them: the message says what the user must fix


class StepInterrupted(DagsterError, DagsterExecutionInterruptedError):
    """A step interrupted by a signal (``manifpt run`` stopped, Ctrl-C).

    Dagster retries an interrupted step that has a retry policy; this one it passes through unretried (a
    ``DagsterError``) and then handles as the interruption it is (the run ends CANCELED when it was being
    canceled).
    """


def not_retried(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` raising ``InputError`` or ``StoreError`` as a ``dg.Failure`` that no retry policy retries, and
    interrupted as a ``StepInterrupted``."""

    @functools.wraps(fn)
    def boundary(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NOT_RETRIED as err:
            raise dg.Failure(description=str(err), metadata={"error": type(err).__name__},
                             allow_retries=False) from err
        except (KeyboardInterrupt, DagsterExecutionInterruptedError) as interrupt:
            raise StepInterrupted(f"interrupted: {interrupt!r}") from interrupt

    return boundary


def step_asset(**kwargs: Any) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """``dg.asset(**kwargs)`` for a pipeline step: retried on transient failures (``TRANSIENT_RETRY`` unless
    ``retry_policy`` is given), failed at once on bad input or a bad store."""
    kwargs.setdefault("retry_policy", TRANSIENT_RETRY)

    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        return dg.asset(**kwargs)(not_retried(fn))

    return decorate
