"""The feature table: every stored sample of a dataset as one row, for SQL and dataframes.

``features/samples.parquet`` holds, per sample, its manifest columns (source,
split, path, …), per space its nearest real reference (id, sample id,
distance; the ``knn`` artifact's distance too) and, per method, its test-time
prediction and probability (the seeds' mean softmax) where the sample is in a
test split. ``features/predictions.parquet`` holds one row per test sample,
method and seed: the report's test accuracy of a method is the mean of its
``correct`` column. Predictions come from the stored networks on the stored
inputs, exactly as the attributor step evaluated them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from manifpt_core.attribution import predict_logits, softmax
from manifpt_core.config import Settings
from manifpt_core.errors import StoreError
from manifpt_core.names import Method
from manifpt_core.steps.attribute import CONTROL, gather_inputs, seed_networks
from manifpt_core.store import Outcome, Store, class_names, combine_hashes, run_cached
from manifpt_core.store.hashing import file_hash
from manifpt_core.store.layout import PREDICTIONS_FILE, SAMPLES_FILE
from manifpt_core.store.records import FeatureTableSummary
from manifpt_core.torch_helpers import resolve_device

logger = logging.getLogger(__name__)

FEATURES_VERSION = "1"
PREDICTIONS_SCHEMA = pa.schema([("sample_id", pa.string()), ("source", pa.string()), ("method", pa.string()),
                                ("seed", pa.int64()), ("predicted", pa.string()), ("probability", pa.float64()),
                                ("correct", pa.bool_())])


def column_prefix(method: Method) -> str:
    """A method's column prefix in ``samples.parquet``: its name with ``-`` as ``_`` (``rgb_knn_pred``)."""
    return str(method).replace("-", "_").replace(":", "_")


def table_methods(settings: Settings) -> list[Method]:
    """The methods of the feature table: every attributor and the raw-image control (classical baselines keep
    no network to predict with)."""
    return [*settings.methods, CONTROL]


def materialize_feature_table(store: Store, settings: Settings, models: list[str]) -> Outcome[FeatureTableSummary]:
    """Write ``features/samples.parquet`` and ``features/predictions.parquet`` for ``models``."""
    classes = class_names(models)
    methods = table_methods(settings)
    inputs = {f"images/{name}": store.source(name).record.content_hash for name in classes}
    inputs |= {f"artifacts/{space}/{name}": store.source(name).artifacts(space).record.content_hash
               for space in settings.spaces for name in classes}
    inputs |= {f"method/{m}": store.attributor_record(m).content_hash for m in methods}

    def compute(tmp: Path, fp: str) -> tuple[str, FeatureTableSummary]:
        device = resolve_device(settings.device)
        test_ids, test_sources = _test_samples(store, classes)
        method_columns, predictions, accuracy = {}, [], {}
        for method in methods:
            columns, rows, acc = _predict(store, method, classes, test_ids, test_sources, device)
            method_columns.update(columns)
            predictions.append(rows)
            accuracy[str(method)] = acc
            logger.info("feature table: %s test accuracy %.4f (mean over seeds)", method, acc)
        samples = pa.concat_tables([_source_rows(store, settings, name, method_columns) for name in classes])
        tmp.mkdir(parents=True)
        pq.write_table(samples, tmp / SAMPLES_FILE)
        pq.write_table(pa.concat_tables(predictions), tmp / PREDICTIONS_FILE)
        content_hash = combine_hashes({name: file_hash(tmp / name) for name in (SAMPLES_FILE, PREDICTIONS_FILE)})
        return content_hash, FeatureTableSummary(
            n_samples=samples.num_rows, n_predictions=sum(t.num_rows for t in predictions),
            spaces=list(settings.spaces), methods=[str(m) for m in methods], classes=classes,
            columns=samples.column_names, accuracy=accuracy)

    return run_cached(store.paths.features, "features", FEATURES_VERSION, inputs,
                      {"spaces": list(settings.spaces), "kinds": list(settings.artifacts.kinds),
                       "methods": [str(m) for m in methods], "classes": classes}, compute, FeatureTableSummary)


def _test_samples(store: Store, classes: list[str]) -> tuple[list[str], list[str]]:
    """Sample ids and sources of the test split, in the order gather_inputs stacks them (class by class, rows
    ascending)."""
    ids, sources = [], []
    for name in classes:
        source = store.source(name)
        rows = source.query_rows()
        table = source.manifest(["sample_id", "split"])
        sample_ids = np.asarray(table.column("sample_id").to_pylist(), dtype=object)[rows]
        split = np.asarray(table.column("split").to_pylist(), dtype=object)[rows]
        picked = sample_ids[split == "test"].tolist()
        ids += picked
        sources += [name] * len(picked)
    return ids, sources


def _predict(store: Store, method: Method, classes: list[str], test_ids: list[str], test_sources: list[str],
             device: str) -> tuple[dict[str, dict[str, tuple[str, float]]], pa.Table, float]:
    """Every seed's test predictions of one method, and the seeds' mean softmax answer per test sample."""
    metrics, networks = seed_networks(store, method)
    x_test, y_test = gather_inputs(store, method, classes)["test"]
    if len(y_test) != len(test_ids):
        raise StoreError(f"{method}: {len(y_test)} test inputs for {len(test_ids)} test samples in the manifests; "
                         "the store is inconsistent: materialize the artifacts and attributors again")
    if metrics.classes != classes:
        raise StoreError(f"the stored {method} attributor knows {metrics.classes}, not {classes}: materialize it "
                         "again for the current models")
    probs = []
    rows: dict[str, list] = {name: [] for name in PREDICTIONS_SCHEMA.names}
    per_seed_accuracy = []
    for seed, net in networks:
        p = softmax(predict_logits(net, x_test, device=device))  # as the attributor step evaluated its test set
        probs.append(p)
        predicted = p.argmax(axis=1)
        per_seed_accuracy.append(float((predicted == y_test).mean()))
        rows["sample_id"] += test_ids
        rows["source"] += test_sources
        rows["method"] += [str(method)] * len(test_ids)
        rows["seed"] += [seed] * len(test_ids)
        rows["predicted"] += [classes[k] for k in predicted]
        rows["probability"] += p.max(axis=1).astype(np.float64).tolist()
        rows["correct"] += (predicted == y_test).tolist()
    mean = np.mean(probs, axis=0)
    answer = {sid: (classes[int(k)], float(mean[i, k])) for i, (sid, k) in enumerate(zip(test_ids, mean.argmax(1)))}
    return {column_prefix(method): answer}, pa.table(rows, schema=PREDICTIONS_SCHEMA), float(np.mean(per_seed_accuracy))


def _source_rows(store: Store, settings: Settings, name: str,
                 method_columns: dict[str, dict[str, tuple[str, float]]]) -> pa.Table:
    """One source's manifest with its nearest-real columns per space and its prediction columns per method."""
    source = store.source(name)
    table = source.manifest()
    n = table.num_rows
    real = store.real.manifest(["sample_id"]).column("sample_id").to_pylist()
    for space in settings.spaces:
        artifacts = source.artifacts(space)
        rows = artifacts.query_row[:]
        nn_id = np.full(n, -1, dtype=np.int64)
        nn_id[rows] = artifacts.nn_id[:]
        mask = nn_id < 0  # reference rows have no neighbour: they are the reference
        dist = np.zeros(n, dtype=np.float32)
        dist[rows] = artifacts.nn_dist[:]
        table = table.append_column(f"{space}_nn_id", pa.array(nn_id, mask=mask))
        table = table.append_column(f"{space}_nn_sample_id",
                                    pa.array([None if m else real[i] for i, m in zip(nn_id, mask)], pa.string()))
        table = table.append_column(f"{space}_nn_dist", pa.array(dist, mask=mask))
        if "knn" in settings.artifacts.kinds:
            knn = np.zeros(n, dtype=np.float32)
            knn[rows] = artifacts.array("knn_dist")[:]
            table = table.append_column(f"{space}_knn_dist", pa.array(knn, mask=mask))
    ids = table.column("sample_id").to_pylist()
    for prefix, answers in method_columns.items():
        got = [answers.get(sid) for sid in ids]
        table = table.append_column(f"{prefix}_pred", pa.array([g[0] if g else None for g in got], pa.string()))
        table = table.append_column(f"{prefix}_prob", pa.array([g[1] if g else None for g in got], pa.float64()))
    return table
