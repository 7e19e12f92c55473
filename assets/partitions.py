"""Per dataset: one partition per generative model (dynamic), one per embedding space and one per baseline
(static), and the product of models and spaces.

Every dataset's assets live under the key prefix ``<dataset>/``, with their own
model partitions, so a second real dataset (with its own zoo) sits beside the first.
"""

from dataclasses import dataclass

import dagster as dg

from manifpt_core.config import Settings


@dataclass(frozen=True)
class DatasetSpec:
    """Names, partitions and partition mappings of one dataset's assets."""

    name: str
    spaces: tuple[str, ...]
    baselines: tuple[str, ...] = ()

    @property
    def models(self) -> dg.DynamicPartitionsDefinition:
        return dg.DynamicPartitionsDefinition(name=models_partition_name(self.name))

    @property
    def space_partitions(self) -> dg.StaticPartitionsDefinition:
        return dg.StaticPartitionsDefinition(list(self.spaces))

    @property
    def baseline_partitions(self) -> dg.StaticPartitionsDefinition:
        return dg.StaticPartitionsDefinition(list(self.baselines))

    @property
    def model_space(self) -> dg.MultiPartitionsDefinition:
        return dg.MultiPartitionsDefinition({"model": self.models, "space": self.space_partitions})

    @classmethod
    def of(cls, settings: Settings) -> "DatasetSpec":
        """The spec of one dataset's settings."""
        return cls(settings.dataset, settings.spaces, settings.baselines.methods)

    def key(self, asset: str) -> dg.AssetKey:
        return dg.AssetKey([self.name, asset])

    def job_name(self, job: str) -> str:
        return f"{self.name}__{job}"


def models_partition_name(dataset: str) -> str:
    """Dynamic partition set names allow letters, digits and '_' only."""
    return "models_" + dataset.replace("-", "_")


by_model = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="model")
by_space = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="space")
