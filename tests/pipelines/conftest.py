"""Fixtures of the Dagster tests: the five step groups."""

import pytest

STEP_GROUPS = {"ingestion", "embedding", "index", "artifacts", "attribution"}


@pytest.fixture(scope="session")
def step_groups():
    """The five step groups every dataset's assets fall into."""
    return set(STEP_GROUPS)
