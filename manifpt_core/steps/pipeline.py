"""Every step of one dataset in dependency order, without Dagster: the library form of the main job.

The Dagster assets call the same step functions partition by partition; this
runs them in one process (for scripts, notebooks and tests) and returns every
step's Outcome, so a caller sees what was computed and what was reused.
"""

from __future__ import annotations

from manifpt_core.config import Settings
from manifpt_core.names import REAL
from manifpt_core.steps.artifacts import materialize_artifacts
from manifpt_core.steps.attribute import CONTROL, train_attributors
from manifpt_core.steps.baselines import run_baseline
from manifpt_core.steps.embed import embed_source
from manifpt_core.steps.generators import materialize_generator
from manifpt_core.steps.index import build_index
from manifpt_core.steps.ingest import ingest_generated, ingest_real
from manifpt_core.steps.report import write_report
from manifpt_core.steps.space import materialize_space
from manifpt_core.store import Outcome, Store


def run_pipeline(store: Store, settings: Settings, models: list[str]) -> list[Outcome]:
    """Ingest, embed, index, materialize artifacts, attribute, run the baselines and report, for ``models`` (zoo entries or folders)."""
    sources = [REAL, *models]
    outcomes = [ingest_real(store, settings)]
    for model in models:
        outcomes += [materialize_generator(store, settings, model), ingest_generated(store, settings, model)]
    for space in settings.spaces:
        outcomes.append(materialize_space(store, settings, space))
        outcomes += [embed_source(store, settings, space, source) for source in sources]
        outcomes.append(build_index(store, settings, space))
        outcomes += [materialize_artifacts(store, settings, space, source) for source in sources]
    outcomes += [train_attributors(store, settings, method, models) for method in (*settings.methods, CONTROL)]
    outcomes += [run_baseline(store, settings, name, models) for name in settings.baselines.methods]
    outcomes.append(write_report(store, settings, models))
    return outcomes
