"""The resources the assets take: the home folder, the settings of every dataset and the compute device
(``manifpt``), and where the heavy blockwise work runs (``dask``).

Settings are parsed and checked once per process (the code location's, or the
``manifpt run`` process's), not at every asset execution: reload the code
location after editing the config file.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from manifpt_core.cluster import ClusterSettings
from manifpt_core.config import Settings, load_datasets
from manifpt_core.errors import InputError
from manifpt_core.store import Home, Store

if TYPE_CHECKING:
    from manifpt_core.cluster import Cluster

DEFAULT_HOME = ".manifpt"


@functools.lru_cache(maxsize=16)
def _datasets(profile: str, config_file: str, device: str, version: tuple[int, int] | None) -> tuple[Settings, ...]:
    # ``version`` (the config file's mtime and size) only keys the cache: an edited file is read again.
    datasets = load_datasets(profile, config_file or None)
    return tuple(dataclasses.replace(s, device=device) for s in datasets) if device else datasets


class ManifptResource(dg.ConfigurableResource):
    """Where the store lives and which settings and device the steps use.

    ``home`` holds ``store/`` (and the Dagster instance when started by ``manifpt``; empty: ``./.manifpt``);
    ``device``, when set, overrides the settings': ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """

    home: str = ""
    profile: str = "demo"
    config_file: str = ""
    device: str = ""  # empty: the settings' own `device`

    @property
    def home_folder(self) -> Home:
        return Home(self.home or DEFAULT_HOME)

    def datasets(self) -> tuple[Settings, ...]:
        """Settings of every configured dataset (parsed once per process and version of the config file: a
        running deployment sees a zoo entry added to the file at its next sensor tick)."""
        path = Path(self.config_file) if self.config_file else None
        stat = path.stat() if path is not None and path.is_file() else None
        version = (stat.st_mtime_ns, stat.st_size) if stat is not None else None
        return _datasets(self.profile, self.config_file, self.device, version)

    def settings(self, dataset: str) -> Settings:
        """Settings of one dataset."""
        for settings in self.datasets():
            if settings.dataset == dataset:
                return settings
        raise InputError(f"no dataset {dataset!r} in the settings; datasets: {[d.dataset for d in self.datasets()]}")

    def store(self, dataset: str) -> Store:
        """The typed store of one dataset."""
        return Store(self.home_folder.store_root, dataset)


class DaskResource(dg.ConfigurableResource):
    """Where the heavy blockwise work of the embedding and artifact steps runs (Dagster stays the orchestrator).

    ``address``: a running Dask scheduler (``tcp://host:8786``); ``workers``: a local cluster of that many worker
    processes; both empty: the dataset settings' ``cluster.*`` (default: in the step's own process). The cluster
    is started or reached once per process and reused by every step that process runs.
    """

    address: str = ""
    workers: int = 0

    def cluster_settings(self, settings: Settings) -> ClusterSettings:
        base = settings.cluster
        if self.address:
            return dataclasses.replace(base, address=self.address, workers=0)
        if self.workers:
            return dataclasses.replace(base, address=None, workers=self.workers)
        return base

    def cluster(self, settings: Settings) -> Cluster | None:
        """The cluster for a step of ``settings``' dataset, or None to compute in this process."""
        from manifpt_core.cluster import shared_cluster

        return shared_cluster(self.cluster_settings(settings))
