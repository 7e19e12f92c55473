"""Jobs, one per partitioning, in the order the main run executes them."""

from __future__ import annotations

import dagster as dg

from assets.artifacts import generated_artifacts, real_artifacts
from assets.attribution import attribution_report, attributor, raw_control
from assets.embedding import generated_embeddings, real_embeddings
from assets.index import reference_index
from assets.ingestion import generated_images, generator, real_images

# (job, partitioning) in dependency order: "none", "model", "space" or "model_space".
real_ingestion_job = dg.define_asset_job("real_ingestion", selection=[real_images],
                                         description="Step 1 for the real images.")
model_ingestion_job = dg.define_asset_job("model_ingestion", selection=[generator, generated_images],
                                          description="Step 1 for one generative model: train or observe it, ingest its images.")
reference_job = dg.define_asset_job("reference", selection=[real_embeddings, reference_index, real_artifacts],
                                    description="Steps 2-4 for the real images of one space.")
model_space_job = dg.define_asset_job("model_space", selection=[generated_embeddings, generated_artifacts],
                                      description="Steps 2 and 4 for one generative model in one space.")
attribution_job = dg.define_asset_job("attribution", selection=[attributor],
                                      description="Step 5: the attributor of one space.")
report_job = dg.define_asset_job("report", selection=[raw_control, attribution_report],
                                 description="Step 5: the raw-image control and the report.")

MAIN_SEQUENCE = (
    (real_ingestion_job, "none"),
    (model_ingestion_job, "model"),
    (reference_job, "space"),
    (model_space_job, "model_space"),
    (attribution_job, "space"),
    (report_job, "none"),
)
