"""Every step of one dataset in dependency order, without Dagster: the library form of the main job.

The Dagster assets call the same step functions partition by partition; this
runs them in one process (for scripts, notebooks and tests) and returns every
step's Outcome, so a caller sees what was computed and what was reused.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from manifpt_core.config import Settings
from manifpt_core.errors import StoreError
from manifpt_core.names import REAL
from manifpt_core.steps.artifacts import materialize_artifacts
from manifpt_core.steps.attribute import CONTROL, train_attributors
from manifpt_core.steps.baselines import run_baseline
from manifpt_core.steps.embed import embed_source
from manifpt_core.steps.features import materialize_feature_table
from manifpt_core.steps.generators import materialize_generator
from manifpt_core.steps.index import build_index
from manifpt_core.steps.ingest import ingest_generated, ingest_real
from manifpt_core.steps.report import write_report
from manifpt_core.steps.robustness import evaluate_robustness
from manifpt_core.steps.space import materialize_space
from manifpt_core.store import Outcome, Store
from manifpt_core.store.cache import PlannedStep, planning

Step = tuple[str, Callable[[], Outcome]]


def pipeline_steps(store: Store, settings: Settings, models: list[str]) -> list[Step]:
    """Every step of the dataset for ``models`` in dependency order, each as (label, call)."""
    sources = [REAL, *models]
    out: list[Step] = [("ingest real", partial(ingest_real, store, settings))]
    for model in models:
        out += [(f"generator {model}", partial(materialize_generator, store, settings, model)),
                (f"ingest {model}", partial(ingest_generated, store, settings, model))]
    for space in settings.spaces:
        out.append((f"space {space}", partial(materialize_space, store, settings, space)))
        out += [(f"embed {source} in {space}", partial(embed_source, store, settings, space, source))
                for source in sources]
        out.append((f"index {space}", partial(build_index, store, settings, space)))
        out += [(f"artifacts {source} in {space}", partial(materialize_artifacts, store, settings, space, source))
                for source in sources]
    out += [(f"attributor {method}", partial(train_attributors, store, settings, method, models))
            for method in (*settings.methods, CONTROL)]
    out += [(f"baseline {name}", partial(run_baseline, store, settings, name, models))
            for name in settings.baselines.methods]
    out.append(("robustness", partial(evaluate_robustness, store, settings, models)))
    out.append(("report", partial(write_report, store, settings, models)))
    out.append(("feature table", partial(materialize_feature_table, store, settings, models)))
    return out


def run_pipeline(store: Store, settings: Settings, models: list[str]) -> list[Outcome]:
    """Ingest, embed, index, materialize artifacts, attribute, run the baselines, evaluate robustness to
    post-processing, report and write the feature table, for ``models`` (zoo entries or folders)."""
    return [call() for _, call in pipeline_steps(store, settings, models)]


def plan_pipeline(store: Store, settings: Settings, models: list[str]) -> list[tuple[str, PlannedStep | str]]:
    """What running the pipeline now would do, step by step, without computing anything: each step's
    :class:`PlannedStep` (fresh, stale or missing), or the reason it cannot be judged yet (an upstream output is
    missing). A step downstream of a stale one is judged against the stored upstream output: it is recomputed
    as well if the stale one's content changes."""
    out: list[tuple[str, PlannedStep | str]] = []
    with planning() as plan:
        for label, call in pipeline_steps(store, settings, models):
            seen = len(plan.steps)
            try:
                call()
            except StoreError as err:
                out.append((label, f"missing: waits on upstream ({err})"))
                continue
            out.append((label, plan.steps[seen] if len(plan.steps) > seen else "not stored by this step"))
    return out
