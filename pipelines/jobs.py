"""Jobs, one per partitioning and dataset, in the order the main run executes them, then one across datasets."""

import dagster as dg

from pipelines.partitions import DatasetSpec

# (job, assets, partitioning, description) in dependency order; partitioning is
# "none", "model", "space" or "model_space".
STAGES = (
    ("real_ingestion", ("real_images",), "none", "Step 1 for the real images."),
    ("model_ingestion", ("generator", "generated_images"), "model",
     "Step 1 for one generative model: train or observe it, ingest its images."),
    ("reference", ("embedding_space", "real_embeddings", "reference_index", "real_artifacts"), "space",
     "Steps 2-4 for the real images in one space: its encoder, embeddings, index and real-class artifacts."),
    ("model_space", ("generated_embeddings", "generated_artifacts"), "model_space",
     "Steps 2 and 4 for one generative model in one space."),
    ("attribution", ("attributor",), "space", "Step 5: the attributors of one space (one per artifact kind)."),
    ("report", ("raw_control", "attribution_report"), "none", "Step 5: the raw-image control and the report."),
)
CROSS_DATASET_JOB = "cross_dataset"  # after every dataset's jobs: it reads all their attributors


def build_jobs(ds: DatasetSpec) -> list[tuple[dg.JobDefinition, str]]:
    """The dataset's jobs with their partitioning, in the order the main run executes them."""
    return [
        (dg.define_asset_job(ds.job_name(name), selection=[ds.key(a) for a in assets],
                             description=f"{ds.name}: {description}"), partitioning)
        for name, assets, partitioning, description in STAGES
    ]


def build_cross_dataset_job(key: dg.AssetKey) -> dg.JobDefinition:
    """The job of the cross-dataset asset ``key``, run once after every dataset's jobs."""
    return dg.define_asset_job(CROSS_DATASET_JOB, selection=[key],
                               description="Step 5 across datasets: each dataset's attributors on the others' models.")
