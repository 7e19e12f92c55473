"""Steps are retried on transient failures, never on bad input or a bad store."""

import dagster as dg

from assets.resources import ManifptResource
from assets.retries import TRANSIENT_RETRY, step_asset
from manifpt_core.errors import InputError

NO_DELAY = dg.RetryPolicy(max_retries=TRANSIENT_RETRY.max_retries)  # the policy's attempts, without its waits


def events(result, event_type: dg.DagsterEventType) -> list:
    return [e for e in result.all_events if e.event_type == event_type]


def flaky_asset(error: Exception, calls: list) -> dg.AssetsDefinition:
    @step_asset(key="flaky", retry_policy=NO_DELAY)
    def flaky() -> dg.MaterializeResult:
        """Raises ``error`` at its first attempt, then succeeds."""
        calls.append(len(calls))
        if len(calls) == 1:
            raise error
        return dg.MaterializeResult()

    return flaky


def test_transient_failure_is_retried_and_materializes():
    calls = []
    result = dg.materialize([flaky_asset(OSError("No space left on device"), calls)],
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert len(calls) == 2
    assert len(events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == 1
    assert len(result.get_asset_materialization_events()) == 1


def test_bad_input_fails_once_with_its_message():
    calls = []
    result = dg.materialize([flaky_asset(InputError("/data/x.png is not an image: remove it"), calls)],
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    assert len(calls) == 1
    assert not events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    [failure] = result.get_step_failure_events()
    assert failure.step_failure_data.user_failure_data.description == "/data/x.png is not an image: remove it"
    assert failure.step_failure_data.user_failure_data.metadata["error"].value == "InputError"


def test_pipeline_steps_retry_transient_failures(demo_defs):
    graph = demo_defs.resolve_asset_graph()
    steps = {k for k in graph.get_all_asset_keys()
             if graph.get(k).is_executable and not graph.get(k).is_observable
             and graph.get(k).group_name in {"embedding", "index", "artifacts", "attribution", "queries"}}
    assert {k.path[-1] for k in steps} >= {"real_embeddings", "reference_index", "generated_artifacts",
                                           "attributor", "feature_table", "query_attribution"}
    for key in steps:
        assert demo_defs.get_assets_def(key).op.retry_policy == TRANSIENT_RETRY, key


def test_a_step_on_an_empty_store_fails_without_retry(tmp_path):
    """A real step whose inputs are missing from the store: a StoreError, reported once, not retried."""
    from pipelines.definitions import build_definitions

    defs = build_definitions(ManifptResource(home=str(tmp_path / "home"), profile="tiny", device="cpu"))
    key = next(k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[-1] == "reference_index")
    result = dg.materialize(defs.assets, selection=[key], partition_key="rgb", resources=defs.resources,
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    assert not events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    [failure] = result.get_step_failure_events()
    data = failure.step_failure_data.user_failure_data
    assert data.metadata["error"].value == "StoreError" and "embeddings" in data.description


def test_an_interrupted_step_is_not_retried():
    """A signal that interrupts a step (the run being stopped) ends the run, without the retries."""
    calls = []
    result = dg.materialize([flaky_asset(KeyboardInterrupt(), calls)], instance=dg.DagsterInstance.ephemeral(),
                            raise_on_error=False)
    assert not result.success
    assert len(calls) == 1
    assert not events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
