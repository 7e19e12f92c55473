"""Dagster wiring: definitions, resources, partitions, jobs and sensors."""
