"""The resource every asset takes: the home folder, the settings of every dataset, and the compute device.

Settings are parsed and checked once per process (the code location's, or the
``manifpt run`` process's), not at every asset execution: reload the code
location after editing the config file.
"""

from __future__ import annotations

import dataclasses
import functools

import dagster as dg

from manifpt_core.config import Settings, load_datasets
from manifpt_core.errors import InputError
from manifpt_core.store import Home, Store

DEFAULT_HOME = ".manifpt"


@functools.lru_cache(maxsize=16)
def _datasets(profile: str, config_file: str, device: str) -> tuple[Settings, ...]:
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
        """Settings of every configured dataset (parsed once per process)."""
        return _datasets(self.profile, self.config_file, self.device)

    def settings(self, dataset: str) -> Settings:
        """Settings of one dataset."""
        for settings in self.datasets():
            if settings.dataset == dataset:
                return settings
        raise InputError(f"no dataset {dataset!r} in the settings; datasets: {[d.dataset for d in self.datasets()]}")

    def store(self, dataset: str) -> Store:
        """The typed store of one dataset."""
        return Store(self.home_folder.store_root, dataset)
