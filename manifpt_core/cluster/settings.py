"""Where the heavy blockwise work runs: in this process (the default), a local Dask cluster, or a running one.

Keys ``cluster.<key>`` in the config. None of them changes a result (the cluster path gives the same bits as
the local one), so none enters a fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from manifpt_core.errors import InputError
from manifpt_core.settings_loader import positive, setting

_ADDRESS = re.compile(r"^([a-z0-9+]+://)?[^\s/:]+(:\d+)?$")


@dataclass(frozen=True)
class ClusterSettings:
    """``address``: a running Dask scheduler (``tcp://host:8786``); ``workers``: start a ``LocalCluster`` of that
    many worker processes instead; neither: compute in this process.

    ``threads_per_worker``: threads of each local worker process; ``shards``: parts the reference set of an exact
    search is split into (0: one per worker); ``timeout_s``: how long to wait for the scheduler and a worker.
    """

    address: str | None = None
    workers: int = setting(0, ge=0)
    threads_per_worker: int = setting(1, ge=1)
    shards: int = setting(0, ge=0)
    timeout_s: float = positive(10.0)

    def __post_init__(self) -> None:
        if self.address is not None:
            if not _ADDRESS.match(self.address.strip()):
                raise InputError(f"cluster.address = {self.address!r} is not a scheduler address; write it as "
                                 "tcp://host:port (the address `dask scheduler` prints)")
            if self.workers:
                raise InputError(f"cluster.address = {self.address!r} and cluster.workers = {self.workers} are both "
                                 "set; keep address to use a running scheduler, or workers to start a local cluster")

    @property
    def enabled(self) -> bool:
        return self.address is not None or self.workers > 0

    def describe(self) -> str:
        if self.address is not None:
            return f"the Dask scheduler at {self.address}"
        if self.workers:
            return f"a local Dask cluster of {self.workers} worker processes"
        return "this process"
