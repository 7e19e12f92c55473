"""Names: one full-match rule for everything that becomes a path or partition, `real` reserved, and methods."""

import pytest

from manifpt_core.errors import InputError
from manifpt_core.names import REAL, Method, check_model_name, check_name


@pytest.mark.parametrize("bad", ["alpha\n", "Alpha", "", "-a", "a b", "a/b", "a" * 65, None, 3])
def test_names_are_refused_unless_the_whole_string_matches(bad):
    with pytest.raises(InputError, match="invalid model name"):
        check_model_name(bad)


def test_real_is_a_source_but_never_a_model():
    assert check_name("source", REAL) == REAL
    with pytest.raises(InputError, match="reserved for the real images"):
        check_model_name(REAL)
    assert check_model_name("dcgan-s1") == "dcgan-s1"


@pytest.mark.parametrize("method, text", [
    (Method.artifacts("rgb"), "rgb"),
    (Method.artifacts("rgb", "knn"), "rgb-knn"),
    (Method.control(), "raw"),
    (Method.of_baseline("durall-lr"), "baseline:durall-lr"),
])
def test_every_method_has_one_canonical_string(method, text):
    assert str(method) == text
    assert Method.parse(text) == method
    assert method.slug == text.replace(":", "-")


def test_kinds_of_method_are_told_apart_without_string_tricks():
    baseline = Method.parse("baseline:raw-blurjpeg")
    assert baseline.is_baseline and baseline.baseline == "raw-blurjpeg" and baseline.space is None
    assert Method.parse("raw").is_control
    knn = Method.parse("ssl-knn")
    assert knn.is_artifacts and (knn.space, knn.kind) == ("ssl", "knn")


@pytest.mark.parametrize("bad", ["rgb-", "rgb-cubic", "durall-lr", "baseline:", "RGB", "", 7])
def test_malformed_methods_name_the_forms(bad):
    with pytest.raises(InputError):
        Method.parse(bad)
