"""Partitions: one per generative model (dynamic), one per embedding space (static), and their product."""

from __future__ import annotations

import dagster as dg

from pipelines.resources import settings_from_env

generative_models = dg.DynamicPartitionsDefinition(name="generative_models")

embedding_spaces = dg.StaticPartitionsDefinition(list(settings_from_env().spaces))

model_space = dg.MultiPartitionsDefinition({"model": generative_models, "space": embedding_spaces})

by_model = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="model")
by_space = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="space")
