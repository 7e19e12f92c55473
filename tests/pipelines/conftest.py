"""Fixtures of the Dagster tests: the five step groups, and waiting on a local web server."""

import socket
import time
import urllib.request

import pytest

STEP_GROUPS = {"ingestion", "embedding", "index", "artifacts", "attribution"}


@pytest.fixture(scope="session")
def step_groups():
    """The five step groups every dataset's assets fall into."""
    return set(STEP_GROUPS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


@pytest.fixture(scope="session")
def free_port():
    """``free_port()``: a TCP port on 127.0.0.1 that nothing listens on now."""
    return _free_port


@pytest.fixture(scope="session")
def wait_for():
    """``wait_for(url, seconds)``: return once ``url`` answers 200, or raise TimeoutError after ``seconds``."""
    return _wait_for
