"""The pipeline's steps as plain functions over the store; the Dagster assets call these."""

from manifpt_core.steps.artifacts import materialize_artifacts
from manifpt_core.steps.attribute import RAW, train_attributors
from manifpt_core.steps.baselines import run_baseline
from manifpt_core.steps.cache import Outcome, load_record
from manifpt_core.steps.embed import embed_source
from manifpt_core.steps.generators import materialize_generator
from manifpt_core.steps.index import build_index
from manifpt_core.steps.ingest import ingest_generated, ingest_real
from manifpt_core.steps.pipeline import run_pipeline
from manifpt_core.steps.report import write_report
from manifpt_core.steps.space import materialize_space, open_space

__all__ = [
    "RAW",
    "Outcome",
    "build_index",
    "embed_source",
    "ingest_generated",
    "ingest_real",
    "load_record",
    "materialize_artifacts",
    "materialize_generator",
    "materialize_space",
    "open_space",
    "run_baseline",
    "run_pipeline",
    "train_attributors",
    "write_report",
]
