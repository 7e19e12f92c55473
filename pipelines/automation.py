"""The automation sensors: they evaluate the assets' conditions (``assets/automation.py``) and request runs."""

import dagster as dg

GPU_TAG = "manifpt/gpu"  # runs that may use the GPU carry it; dagster.yaml queues one such run at a time


def automation_sensors(gpu_keys: list[dg.AssetKey]) -> list[dg.AutomationConditionSensorDefinition]:
    """Two automation sensors, on by default: one for the GPU-pool assets and the reports that gather them
    (its runs tagged for the GPU queue limit), one for everything else, source observations included.
    Their targets are disjoint, so no change is requested twice; an asset that waits on another's request
    (the report on the attributors) must be evaluated by the same sensor to see it."""
    gpu = dg.AssetSelection.assets(*gpu_keys)
    return [
        dg.AutomationConditionSensorDefinition(
            "automation_gpu", target=gpu, run_tags={GPU_TAG: "true"},
            default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
            description="Requests the GPU-pool assets and the reports when their inputs or code changed; runs "
                        "tagged manifpt/gpu."),
        dg.AutomationConditionSensorDefinition(
            "automation", target=dg.AssetSelection.all(include_sources=True) - gpu,
            default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
            description="Observes the source folders and requests the other assets whose inputs or code changed."),
    ]
