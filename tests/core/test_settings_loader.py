"""The generic settings loader: conversion by annotation, declared ranges, and errors that locate the value."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pytest

from manifpt_core.errors import InputError
from manifpt_core.settings_loader import SettingError, load, load_rules, positive, setting


@dataclass(frozen=True)
class Inner:
    widths: tuple[int, ...] = positive((8, 16))
    rate: float = setting(0.5, ge=0, le=1)


@dataclass(frozen=True)
class Outer:
    name: str
    count: int = positive(1)
    scale: float = 1.0
    flag: bool = False
    path: str | None = None
    size: tuple[int, int] | None = None
    mode: Literal["fast", "exact"] = "exact"
    inner: Inner = field(default_factory=Inner)
    inners: tuple[Inner, ...] = ()

    def __post_init__(self) -> None:
        if self.mode == "fast" and self.size is None:
            raise InputError("mode 'fast' needs a size")


def test_values_are_converted_to_their_annotated_types():
    got = load(Outer, {"name": "a", "count": np.int64(3), "scale": 2, "flag": True, "size": [4, 5], "mode": "fast",
                       "inner": {"widths": [1, 2, 3], "rate": 1}, "inners": [{"rate": 0}, {}]})
    assert got == Outer("a", 3, 2.0, True, None, (4, 5), "fast", Inner((1, 2, 3), 1.0), (Inner(rate=0.0), Inner()))
    assert type(got.count) is int and type(got.scale) is float and type(got.inner.rate) is float
    assert load(Outer, {"name": "a", "inner": Inner(rate=0.25)}).inner == Inner(rate=0.25)  # an instance passes as is


@pytest.mark.parametrize(
    "data, message",
    [
        ({"count": 1.5}, "count = 1.5 must be an int > 0"),
        ({"count": 2.0}, "count = 2.0 must be an int > 0"),
        ({"count": True}, "count = True must be an int > 0"),
        ({"count": "5"}, "count = '5' must be an int > 0"),
        ({"count": 0}, "count = 0 must be an int > 0"),
        ({"scale": False}, "scale = False must be a finite number"),
        ({"scale": float("inf")}, "scale = inf must be a finite number"),
        ({"flag": 1}, "flag = 1 must be true or false"),
        ({"path": 3}, "path = 3 must be a string"),
        ({"size": "45"}, "size = '45' must be a list of 2 ints"),
        ({"size": [4, 5, 6]}, "size = [4, 5, 6] must be a list of 2 ints"),
        ({"mode": "slow"}, "mode = 'slow' must be one of ['fast', 'exact']"),
        ({"inner": [1]}, "inner = [1] must be a table"),
        ({"inner": {"widths": "816"}}, "inner.widths = '816' must be a list of ints > 0"),
        ({"inner": {"widths": [8, -1]}}, "inner.widths[1] = -1 must be an int > 0"),
        ({"inner": {"rate": 1.5}}, "inner.rate = 1.5 must be a finite number >= 0 and <= 1"),
        ({"inners": [{}, {"rate": "x"}]}, "inners[1].rate = 'x' must be a finite number >= 0 and <= 1"),
    ],
)
def test_a_bad_value_names_the_key_the_value_and_what_it_must_be(data, message):
    with pytest.raises(SettingError) as err:
        load(Outer, {"name": "a", **data}, "my.toml")
    assert str(err.value) == f"my.toml: {message}"
    assert isinstance(err.value, InputError) and err.value.where == "my.toml"


def test_unknown_and_missing_keys_list_the_valid_ones():
    unknown = r"unknown key\(s\) \['inner.wdths'\]; valid keys of inner: \['rate', 'widths'\]"
    with pytest.raises(SettingError, match=unknown):
        load(Outer, {"name": "a", "inner": {"wdths": [1]}})
    with pytest.raises(SettingError, match=r"the settings misses required key\(s\) \['name'\]"):
        load(Outer, {})
    with pytest.raises(SettingError, match=r"^x.toml: the settings must be a table of keys and values, got 3$"):
        load(Outer, 3, "x.toml")
    with pytest.raises(SettingError, match=r"^x.toml: zoo\[0\] = 3 must be a table$"):
        load(Outer, 3, "x.toml", key="zoo[0]")


def test_errors_of_the_class_own_checks_get_the_origin_and_key():
    with pytest.raises(SettingError, match=r"^f.toml: mode 'fast' needs a size$"):
        load(Outer, {"name": "a", "mode": "fast"}, "f.toml")
    with pytest.raises(SettingError, match=r"^f.toml: outer: mode 'fast' needs a size$"):
        load(Outer, {"name": "a", "mode": "fast"}, "f.toml", key="outer")


def test_label_renames_the_keys_shown_and_build_hooks_get_the_origin():
    seen = []

    def build(data, *, where, key, label):
        seen.append((where, key, label(key)))
        return load(Inner, data, where, key=key, label=label)

    @dataclass(frozen=True)
    class Hooked:
        inner: Inner = field(default_factory=Inner, metadata=load_rules(build=build))

    with pytest.raises(SettingError) as err:
        load(Hooked, {"inner": {"rate": 2}}, "w", label=lambda path: f"datasets[1].{path}")
    assert str(err.value) == "w: datasets[1].inner.rate = 2 must be a finite number >= 0 and <= 1"
    assert err.value.key == "datasets[1].inner.rate"
    assert seen == [("w", "inner", "datasets[1].inner")]


def test_a_setting_error_survives_pickling():
    with pytest.raises(SettingError) as err:
        load(Outer, {"name": "a", "count": 0}, "p.toml")
    copy = pickle.loads(pickle.dumps(err.value))
    assert str(copy) == str(err.value) and copy.key == "count" and copy.where == "p.toml"
