"""The code location: every asset, job, sensor and resource of manifpt."""

from __future__ import annotations

import dagster as dg

from assets import artifacts, attribution, embedding, index, ingestion
from pipelines.jobs import MAIN_SEQUENCE
from pipelines.resources import resource_from_env
from pipelines.sensors import model_discovery_sensor

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingestion, embedding, index, artifacts, attribution]),
    jobs=[job for job, _ in MAIN_SEQUENCE],
    sensors=[model_discovery_sensor],
    resources={"manifpt": resource_from_env()},
)
