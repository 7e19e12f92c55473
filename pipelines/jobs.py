"""Jobs, one per partitioning and dataset, in the order the main run executes them, then one across datasets."""

import dagster as dg

from assets.partitions import DatasetSpec
from pipelines.automation import GPU_TAG

# (job, assets, partitioning, uses the GPU, description) in dependency order; partitioning is
# "none", "model", "space", "model_space" or "baseline".
STAGES = (
    ("real_ingestion", ("real_images",), "none", False, "Step 1 for the real images."),
    ("model_ingestion", ("generator", "generated_images"), "model", True,
     "Step 1 for one generative model: train or observe it, ingest its images."),
    ("reference", ("embedding_space", "real_embeddings", "reference_index", "real_artifacts"), "space", True,
     "Steps 2-4 for the real images in one space: its encoder, embeddings, index and real-class artifacts."),
    ("model_space", ("generated_embeddings", "generated_artifacts"), "model_space", True,
     "Steps 2 and 4 for one generative model in one space."),
    ("attribution", ("attributor",), "space", True, "Step 5: the attributors of one space (one per artifact kind)."),
    ("baselines", ("baseline",), "baseline", True, "Step 5: one baseline of the paper's Table 2 on the same splits."),
    ("control", ("raw_control",), "none", True, "Step 5: the raw-image control."),
    ("robustness_eval", ("robustness",), "none", True,
     "Step 5: every method's accuracy on test images after JPEG, resizing, blur and noise."),
    ("report", ("attribution_report",), "none", False, "Step 5: the report."),
    ("features", ("feature_table",), "none", True,
     "Step 5: the feature table (samples.parquet, predictions.parquet) that SQL and dataframes read."),
)
# Observation jobs: they record the sources' data versions (the main run starts with them).
OBSERVATIONS = (
    ("observe_real", ("real_source", "model_set"), "none",
     "Observe the real images' source (content hash) and the set of generative models."),
    ("observe_models", ("model_source",), "model", "Observe one generative model's source (zoo card or folder)."),
)
CROSS_DATASET_JOB = "cross_dataset"  # after every dataset's jobs: it reads all their attributors


def build_jobs(ds: DatasetSpec) -> list[tuple[dg.JobDefinition, str]]:
    """The dataset's jobs with their partitioning, in the order the main run executes them."""
    return [
        (dg.define_asset_job(ds.job_name(name), selection=[ds.key(a) for a in assets],
                             tags={GPU_TAG: "true"} if gpu else None,
                             description=f"{ds.name}: {description}"), partitioning)
        for name, assets, partitioning, gpu, description in STAGES
        if partitioning != "baseline" or ds.baselines
    ]


def partition_keys(ds: DatasetSpec, models: list[str]) -> dict[str, list]:
    """Every partition key of each partitioning (as in STAGES and OBSERVATIONS), for ``models``."""
    return {
        "none": [None],
        "model": list(models),
        "space": list(ds.spaces),
        "baseline": list(ds.baselines),
        "model_space": [dg.MultiPartitionKey({"model": m, "space": s}) for m in models for s in ds.spaces],
    }


def build_observation_jobs(ds: DatasetSpec) -> list[tuple[dg.JobDefinition, str]]:
    """The dataset's source observation jobs with their partitioning."""
    return [
        (dg.define_asset_job(ds.job_name(name), selection=dg.AssetSelection.assets(*(ds.key(s) for s in sources)),
                             description=f"{ds.name}: {description}"), partitioning)
        for name, sources, partitioning, description in OBSERVATIONS
    ]


def build_cross_dataset_job(key: dg.AssetKey) -> dg.JobDefinition:
    """The job of the cross-dataset asset ``key``, run once after every dataset's jobs."""
    return dg.define_asset_job(CROSS_DATASET_JOB, selection=[key], tags={GPU_TAG: "true"},
                               description="Step 5 across datasets: each dataset's attributors on the others' models.")
