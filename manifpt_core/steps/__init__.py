"""The pipeline's steps as plain functions over the typed store; the Dagster assets call these.

Each step takes a :class:`~manifpt_core.store.Store` (and the settings), reads
its inputs through the store's typed views, and returns an
:class:`~manifpt_core.store.Outcome` whose summary is the step's typed record.
"""

from manifpt_core.steps.artifacts import materialize_artifacts
from manifpt_core.steps.attribute import CONTROL, train_attributors
from manifpt_core.steps.baselines import run_baseline
from manifpt_core.steps.embed import embed_source
from manifpt_core.steps.generators import materialize_generator
from manifpt_core.steps.index import build_index
from manifpt_core.steps.ingest import ingest_generated, ingest_real
from manifpt_core.steps.pipeline import run_pipeline
from manifpt_core.steps.report import write_report
from manifpt_core.steps.space import materialize_space, open_space

__all__ = [
    "CONTROL",
    "build_index",
    "embed_source",
    "ingest_generated",
    "ingest_real",
    "materialize_artifacts",
    "materialize_generator",
    "materialize_space",
    "open_space",
    "run_baseline",
    "run_pipeline",
    "train_attributors",
    "write_report",
]
