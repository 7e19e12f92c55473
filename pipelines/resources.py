"""Resources: the store root, the pipeline settings and the compute device."""

from __future__ import annotations

import dataclasses
import os

import dagster as dg

from manifpt_core.config import Settings, load_datasets, load_settings
from manifpt_core.store import Store, default_home

ENV_PROFILE = "MANIFPT_PROFILE"
ENV_CONFIG = "MANIFPT_CONFIG"
ENV_DEVICE = "MANIFPT_DEVICE"


def datasets_from_env() -> tuple[Settings, ...]:
    """Settings named by ``$MANIFPT_PROFILE`` (default ``demo``) and ``$MANIFPT_CONFIG`` (a TOML file)."""
    return load_datasets(os.environ.get(ENV_PROFILE, "demo"), os.environ.get(ENV_CONFIG) or None)


class ManifptResource(dg.ConfigurableResource):
    """Where the store lives and which settings and device the steps use.

    ``home`` holds ``store/`` (and the Dagster instance when started by ``manifpt``);
    ``device``, when set, overrides the settings': ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """

    home: str = ""
    profile: str = "demo"
    config_file: str = ""
    device: str = ""  # empty: the settings' own `device`

    def _on_device(self, settings: Settings) -> Settings:
        return dataclasses.replace(settings, device=self.device) if self.device else settings

    def datasets(self) -> tuple[Settings, ...]:
        """Settings of every configured dataset."""
        return tuple(self._on_device(s) for s in load_datasets(self.profile, self.config_file or None))

    def settings(self, dataset: str) -> Settings:
        """Settings of one dataset."""
        return self._on_device(load_settings(self.profile, self.config_file or None, dataset))

    def store(self, dataset: str) -> Store:
        home = self.home or str(default_home())
        return Store(os.path.join(home, "store"), dataset)


def resource_from_env() -> ManifptResource:
    """The resource as configured by the environment (``MANIFPT_HOME``, ``_PROFILE``, ``_CONFIG``, ``_DEVICE``)."""
    return ManifptResource(
        home=str(default_home()),
        profile=os.environ.get(ENV_PROFILE, "demo"),
        config_file=os.environ.get(ENV_CONFIG, ""),
        device=os.environ.get(ENV_DEVICE, ""),
    )
