"""The code location: every asset, job, sensor and resource of manifpt."""

import dagster as dg

from assets import artifacts, attribution, embedding, index, ingestion
from pipelines.jobs import MAIN_SEQUENCE
from pipelines.resources import ManifptResource, resource_from_env
from pipelines.sensors import model_discovery_sensor

ASSET_MODULES = [ingestion, embedding, index, artifacts, attribution]


def build_definitions(resource: ManifptResource) -> dg.Definitions:
    """Definitions bound to one store and settings (the CLI and tests build their own)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules(ASSET_MODULES),
        jobs=[job for job, _ in MAIN_SEQUENCE],
        sensors=[model_discovery_sensor],
        resources={"manifpt": resource},
    )


defs = build_definitions(resource_from_env())
