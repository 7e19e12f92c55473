"""Model discovery: register every configured zoo entry and model folder as a partition."""

import dagster as dg

from manifpt_core.config import Settings
from manifpt_core.sources import discover_benchmark
from pipelines.partitions import generative_models
from pipelines.resources import ManifptResource


def configured_models(settings: Settings) -> list[str]:
    """Zoo entries plus, for a folder source, every model folder beside ``real/``."""
    models = [card.name for card in settings.zoo]
    if settings.source.kind == "folder":
        models += [name for name in discover_benchmark(settings.source.path) if name != "real"]
    if len(set(models)) != len(models):
        raise ValueError(f"a model name is both a zoo entry and a folder: {sorted(models)}")
    return sorted(models)


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def model_discovery_sensor(context: dg.SensorEvaluationContext, manifpt: ManifptResource) -> dg.SensorResult:
    """Adds a `generative_models` partition for each configured model that has none yet."""
    known = set(context.instance.get_dynamic_partitions(generative_models.name))
    new = [m for m in configured_models(manifpt.settings()) if m not in known]
    if not new:
        return dg.SensorResult(skip_reason="no new generative models")
    context.log.info(f"registering new generative models: {new}")
    return dg.SensorResult(dynamic_partitions_requests=[generative_models.build_add_request(new)])
