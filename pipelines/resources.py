"""Resources: the store root, the pipeline settings and the compute device."""

from __future__ import annotations

import dataclasses
import os

import dagster as dg

from manifpt_core.config import Settings, load_settings
from manifpt_core.store import Store, default_home

ENV_PROFILE = "MANIFPT_PROFILE"
ENV_CONFIG = "MANIFPT_CONFIG"
ENV_DEVICE = "MANIFPT_DEVICE"


def settings_from_env() -> Settings:
    """Settings named by ``$MANIFPT_PROFILE`` (default ``demo``) and ``$MANIFPT_CONFIG`` (a TOML file)."""
    return load_settings(os.environ.get(ENV_PROFILE, "demo"), os.environ.get(ENV_CONFIG) or None)


class ManifptResource(dg.ConfigurableResource):
    """Where the store lives and which settings and device the steps use.

    ``home`` holds ``store/`` (and the Dagster instance when started by ``manifpt``);
    ``device`` is ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """

    home: str = ""
    profile: str = "demo"
    config_file: str = ""
    device: str = "auto"

    def settings(self) -> Settings:
        settings = load_settings(self.profile, self.config_file or None)
        if self.device != settings.device:
            settings = dataclasses.replace(settings, device=self.device)
        return settings

    def store(self) -> Store:
        home = self.home or str(default_home())
        return Store(os.path.join(home, "store"), self.settings().dataset)


def resource_from_env() -> ManifptResource:
    """The resource as configured by the environment (``MANIFPT_HOME``, ``_PROFILE``, ``_CONFIG``, ``_DEVICE``)."""
    return ManifptResource(
        home=str(default_home()),
        profile=os.environ.get(ENV_PROFILE, "demo"),
        config_file=os.environ.get(ENV_CONFIG, ""),
        device=os.environ.get(ENV_DEVICE, "auto"),
    )
