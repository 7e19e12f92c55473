"""Asset checks: what a user wants to trust in the stored outputs, measured on them after each materialization.

- artifacts: no query sample is its own nearest reference image (identical content hashes): a real-class
  sample would be a leak of the reference set into the real class; a generated one, a copy of a training
  image. Blocking (an error for the real class, a warning for a model).
- index: an approximate index (IVF, HNSW) finds the exact nearest reference of a sample of real queries at
  least ``checks.min_index_recall`` of the time. Blocking.
- generated images: a model's Fréchet distance to the real images is at most ``checks.max_fid_ratio`` times
  the real-vs-real floor (a warning: a weak generator is still a class to attribute).
- attributors: every artifact kind's test accuracy is above chance (1 / classes).
- feature table: as many rows per source as its manifest. Blocking.

Each check reads the store through its typed API; its result carries the counts, values and bounds.
"""

import functools
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import dagster as dg
import numpy as np
import pyarrow.parquet as pq

from assets.partitions import DatasetSpec
from assets.resources import ManifptResource
from manifpt_core import search
from manifpt_core.config import Settings
from manifpt_core.errors import ManifptError
from manifpt_core.names import REAL, Method
from manifpt_core.search.settings import SearchSettings
from manifpt_core.steps.index import sample_rows
from manifpt_core.store import Store
from manifpt_core.store.cache import require_record
from manifpt_core.store.records import FeatureTableSummary
from manifpt_core.torch_helpers import resolve_device

EXAMPLES = 5  # offending sample ids shown in a result's metadata
RECALL_SEED_OFFSET = 1  # the check samples other queries than the index card's own recall measurement


def _hashes(source) -> np.ndarray:
    return np.asarray(source.manifest(["content_hash"]).column("content_hash").to_pylist(), dtype=object)


def self_neighbours(store: Store, space: str, name: str) -> dict[str, Any]:
    """How many of source ``name``'s query samples have, as nearest reference in ``space``, the identical image
    (same content hash), and how many lie at distance 0."""
    source, artifacts = store.source(name), store.source(name).artifacts(space)
    rows = np.asarray(artifacts.query_row[:]).reshape(-1)
    nearest = np.asarray(artifacts.nn_id[:]).reshape(len(rows), -1)[:, 0]
    distance = np.asarray(artifacts.nn_dist[:]).reshape(len(rows), -1)[:, 0]
    reference = _hashes(store.real)[: store.real.n_reference]
    same = _hashes(source)[rows] == reference[nearest]
    ids = source.manifest(["sample_id"]).column("sample_id").to_pylist()
    return {"n_samples": len(rows), "n_self_neighbours": int(same.sum()),
            "n_zero_distance": int((distance <= 0).sum()),
            "examples": [ids[r] for r in rows[same][:EXAMPLES]]}


def index_recall(store: Store, settings: Settings, space: str) -> dict[str, Any]:
    """recall@1 of the stored index of ``space`` against exact search over the stored reference embeddings, on a
    seeded sample of real-class embeddings; ``exact: True`` (nothing measured) for a flat index."""
    card = store.index(space).summary
    index = search.load_index(store.paths.index_file(space))
    kind = search.index_kind(index)
    if kind == "flat":
        return {"exact": True, "kind": kind}
    device = resolve_device(settings.device)
    found = search.Searcher(index, SearchSettings(**card.search), device)  # searched as it was built to be
    real = store.real
    summary = real.summary
    rows = sample_rows(summary.query_start, summary.n_queries, settings.search.recall_queries,
                       settings.data_seed + RECALL_SEED_OFFSET)
    queries = np.ascontiguousarray(real.embeddings(space).get_orthogonal_selection((rows, slice(None))),
                                   dtype=np.float32)
    exact = search.Searcher(search.build_flat_index(real.reference_embeddings(space)),
                            SearchSettings(candidates=found.settings.candidates), device)
    recall = search.recall_at_1(*found.search(queries), *exact.search(queries))
    return {"exact": False, "kind": kind, "recall_at_1": recall, "n_queries": len(rows)}


def frechet_ratio(store: Store, model: str) -> dict[str, Any]:
    """A model's Fréchet distance to the held-out real images, the real floor and their ratio (None: no score)."""
    fd, floor = store.model(model).summary.frechet_to_real, store.real.summary.frechet_real_floor
    ratio = fd / floor if fd is not None and floor else None
    return {"frechet_to_real": fd, "frechet_real_floor": floor, "ratio": ratio}


def attributor_accuracy(store: Store, settings: Settings, space: str) -> dict[str, dict[str, float]]:
    """Per artifact kind of ``space``: the attributor's mean test accuracy and chance (1 / classes)."""
    out = {}
    for kind in settings.artifacts.kinds:
        metrics = store.attributor(Method.artifacts(space, kind))
        out[str(Method.artifacts(space, kind))] = {"accuracy": metrics.accuracy_mean,
                                                    "chance": 1.0 / len(metrics.classes)}
    return out


def feature_rows(store: Store) -> dict[str, dict[str, int]]:
    """Per class of the feature table: its rows there and in the source's manifest."""
    summary = require_record(store.paths.features, FeatureTableSummary, "the feature table").summary
    stored = Counter(pq.read_table(store.paths.samples_table, columns=["source"]).column("source").to_pylist())
    return {name: {"table": stored.get(name, 0), "manifest": store.source(name).manifest(["sample_id"]).num_rows}
            for name in sorted(set(summary.classes) | set(stored))}


def failing_on_store_errors(fn: Callable[..., dg.AssetCheckResult]) -> Callable[..., dg.AssetCheckResult]:
    """A check that cannot read what it checks (missing, damaged) fails, with the error as its description."""

    @functools.wraps(fn)
    def check(*args: Any, **kwargs: Any) -> dg.AssetCheckResult:
        try:
            return fn(*args, **kwargs)
        except ManifptError as err:
            return dg.AssetCheckResult(passed=False, description=str(err),
                                       metadata={"error": dg.MetadataValue.text(type(err).__name__)})

    return check


@failing_on_store_errors
def check_self_neighbours(store: Store, space: str, name: str) -> dg.AssetCheckResult:
    """Passes when no query sample of ``name`` is its own nearest reference in ``space``; an error for the real
    class, a warning for a model."""
    found = self_neighbours(store, space, name)
    n = found["n_self_neighbours"]
    return dg.AssetCheckResult(
        passed=n == 0, severity=dg.AssetCheckSeverity.ERROR if name == REAL else dg.AssetCheckSeverity.WARN,
        description=f"{n} of {found['n_samples']} samples of {name!r} are their own nearest reference image in "
                    f"{space!r}" if n else None,
        metadata={**{k: v for k, v in found.items() if k != "examples"},
                  "examples": dg.MetadataValue.json(found["examples"])})


@failing_on_store_errors
def check_index_recall(store: Store, settings: Settings, space: str) -> dg.AssetCheckResult:
    """Passes for an exact index, and for an approximate one whose recall@1 reaches checks.min_index_recall."""
    bound = settings.checks.min_index_recall
    found = index_recall(store, settings, space)
    passed = found["exact"] or found["recall_at_1"] >= bound
    return dg.AssetCheckResult(passed=bool(passed), metadata={**found, "min_index_recall": bound},
                               description=None if passed else f"recall@1 {found['recall_at_1']:.3f} of the "
                               f"{found['kind']} index is below checks.min_index_recall = {bound}")


@failing_on_store_errors
def check_frechet(store: Store, settings: Settings, model: str) -> dg.AssetCheckResult:
    """Passes (a warning otherwise) when the model's Fréchet distance is at most checks.max_fid_ratio times the
    real floor; skipped (passed, with the reason) when either is not stored."""
    bound = settings.checks.max_fid_ratio
    found = frechet_ratio(store, model)
    metadata = {**{k: dg.MetadataValue.text("n/a") if v is None else v for k, v in found.items()},
                "max_fid_ratio": bound}
    if found["ratio"] is None:
        return dg.AssetCheckResult(passed=True, description="skipped: no Fréchet distance or real floor is stored",
                                   metadata={**metadata, "skipped": True})
    passed = found["ratio"] <= bound
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
                               description=None if passed else f"{model!r} is {found['ratio']:.1f} times the real "
                               f"floor from the real images, above checks.max_fid_ratio = {bound}")


@failing_on_store_errors
def check_attributors(store: Store, settings: Settings, space: str) -> dg.AssetCheckResult:
    """Passes when every artifact kind's attributor in ``space`` scores above chance."""
    found = attributor_accuracy(store, settings, space)
    weak = sorted(m for m, a in found.items() if a["accuracy"] <= a["chance"])
    return dg.AssetCheckResult(passed=not weak, description=f"at or below chance: {weak}" if weak else None,
                               metadata={"methods": dg.MetadataValue.json(found),
                                         "at_or_below_chance": dg.MetadataValue.json(weak)})


@failing_on_store_errors
def check_feature_rows(store: Store) -> dg.AssetCheckResult:
    """Passes when the feature table has as many rows per source as the source's manifest."""
    found = feature_rows(store)
    wrong = sorted(name for name, n in found.items() if n["table"] != n["manifest"])
    return dg.AssetCheckResult(
        passed=not wrong, description=f"row counts differ from the manifests for {wrong}" if wrong else None,
        metadata={"rows": sum(n["table"] for n in found.values()),
                  "manifest_rows": sum(n["manifest"] for n in found.values()),
                  "per_source": dg.MetadataValue.json(found), "mismatched": dg.MetadataValue.json(wrong)})


def build(ds: DatasetSpec) -> list[dg.AssetChecksDefinition]:
    """The asset checks of one dataset, partitioned as the assets they check (a Dagster preview feature in 1.13,
    whose warning at every load of the code location is not the user's to act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        return _build(ds)


def _build(ds: DatasetSpec) -> list[dg.AssetChecksDefinition]:

    @dg.asset_check(asset=ds.key("real_artifacts"), name="no_self_neighbour", blocking=True,
                    partitions_def=ds.space_partitions)
    def real_no_self_neighbour(context: dg.AssetCheckExecutionContext, manifpt: ManifptResource):
        """No real-class sample has an identical reference image as its nearest neighbour (a leak between the
        indexed reference set and the real class)."""
        return check_self_neighbours(manifpt.store(ds.name), context.partition_key, REAL)

    @dg.asset_check(asset=ds.key("generated_artifacts"), name="no_self_neighbour", blocking=True,
                    partitions_def=ds.model_space)
    def generated_no_self_neighbour(context: dg.AssetCheckExecutionContext, manifpt: ManifptResource):
        """No generated sample is an identical copy of its nearest reference image (a memorized training image,
        or real images in a model folder): a warning."""
        keys = context.partition_key.keys_by_dimension
        return check_self_neighbours(manifpt.store(ds.name), keys["space"], keys["model"])

    @dg.asset_check(asset=ds.key("reference_index"), name="recall_at_1", blocking=True,
                    partitions_def=ds.space_partitions)
    def index_recall_check(context: dg.AssetCheckExecutionContext, manifpt: ManifptResource):
        """An approximate index finds the exact nearest reference of real queries at least
        checks.min_index_recall of the time; an exact index passes."""
        return check_index_recall(manifpt.store(ds.name), manifpt.settings(ds.name), context.partition_key)

    @dg.asset_check(asset=ds.key("generated_images"), name="frechet_to_real", partitions_def=ds.models)
    def frechet_check(context: dg.AssetCheckExecutionContext, manifpt: ManifptResource):
        """The model's Fréchet distance to held-out real images is at most checks.max_fid_ratio times what real
        images score (a warning)."""
        return check_frechet(manifpt.store(ds.name), manifpt.settings(ds.name), context.partition_key)

    @dg.asset_check(asset=ds.key("attributor"), name="above_chance", partitions_def=ds.space_partitions)
    def attributor_check(context: dg.AssetCheckExecutionContext, manifpt: ManifptResource):
        """Every artifact kind's attributor in this space scores above chance (1 / number of classes)."""
        return check_attributors(manifpt.store(ds.name), manifpt.settings(ds.name), context.partition_key)

    @dg.asset_check(asset=ds.key("feature_table"), name="rows_match_manifests", blocking=True)
    def feature_check(manifpt: ManifptResource):
        """The feature table holds one row per stored sample: as many rows per source as its manifest."""
        return check_feature_rows(manifpt.store(ds.name))

    return [real_no_self_neighbour, generated_no_self_neighbour, index_recall_check, frechet_check,
            attributor_check, feature_check]
