"""Model discovery: register every configured zoo entry and model folder as a partition of its dataset."""

import dagster as dg

from manifpt_core.config import Settings
from manifpt_core.sources import discover_benchmark
from pipelines.partitions import models_partition_name
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
    """Adds a model partition for each configured model of each dataset that has none yet."""
    requests = []
    for settings in manifpt.datasets():
        name = models_partition_name(settings.dataset)
        known = set(context.instance.get_dynamic_partitions(name))
        new = [m for m in configured_models(settings) if m not in known]
        if new:
            context.log.info(f"registering new generative models of {settings.dataset}: {new}")
            requests.append(dg.DynamicPartitionsDefinition(name=name).build_add_request(new))
    if not requests:
        return dg.SensorResult(skip_reason="no new generative models")
    return dg.SensorResult(dynamic_partitions_requests=requests)
