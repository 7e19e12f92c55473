"""Frozen settings dataclasses built from plain data (a profile, a TOML table), every value checked once.

:func:`load` walks a dataclass's fields and converts each value by its type annotation:
``int`` (never a bool or a float), ``float`` (an int is accepted and converted), ``str``,
``bool``, ``X | None``, ``tuple[X, ...]`` and fixed tuples (from a list; a string is not a
tuple), ``Literal[...]`` and nested dataclasses (from a table). Ranges are declared on the
field (:func:`setting`, :func:`positive`, or ``metadata=``:func:`load_rules`). A bad value
raises :class:`SettingError` naming the full key (``attributor.widths[1]``), the value, what
was expected and where the data came from.

The dataclasses' own ``__post_init__`` keeps the checks about meaning (choices, names,
rules across fields); their errors are reported with the same key and origin.

A leaf module: it imports nothing of the project but its errors, so every settings class
can declare its ranges with it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, TypeVar, Union

from manifpt_core.errors import InputError

T = TypeVar("T")

# Field metadata keys read by load().
BOUNDS = ("ge", "gt", "le", "lt")
BUILD = "build"

Label = Callable[[str], str]


class SettingError(InputError):
    """A bad setting; ``key`` is its full name as shown in the message, ``where`` the origin of the data."""

    def __init__(self, message: str, key: str = "", where: str = "") -> None:
        # Only the message goes to the base class, so the error pickles like any exception.
        super().__init__(message)
        self.key = key
        self.where = where


def load_rules(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
               lt: float | None = None, build: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Field metadata that :func:`load` follows: ``ge``/``gt``/``le``/``lt`` bound a number, or each
    number of a tuple.

    ``build``, for a field holding a dataclass (or a tuple of them), replaces the generic
    construction from a table: it is called as ``build(table, where=..., key=..., label=...)``
    and should build through :func:`load` itself, after its own preparation of the table.
    """
    rules: dict[str, Any] = {name: value for name, value in zip(BOUNDS, (ge, gt, le, lt)) if value is not None}
    if build is not None:
        rules[BUILD] = build
    return rules


def setting(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None) -> Any:
    """A dataclass field (``default`` as given) holding a number, or a tuple of numbers, within bounds."""
    return dataclasses.field(default=default, metadata=load_rules(ge=ge, gt=gt, le=le, lt=lt))


def positive(default: Any = dataclasses.MISSING) -> Any:
    """A field holding a number > 0 (or a tuple of them)."""
    return setting(default, gt=0)


def load(cls: type[T], data: Any, where: str = "", *, key: str = "", label: Label | None = None,
         make: Callable[..., T] | None = None) -> T:
    """An instance of the dataclass ``cls`` from the mapping ``data``, every value converted and checked.

    ``where`` (a profile, a file path) and ``key`` (the path of ``data`` in the settings, e.g.
    ``zoo[1]``; empty at the top) name the data in errors; ``label`` maps a key path to the
    name shown (e.g. to show that a value came from ``datasets[1]``). ``make`` builds the
    instance from the converted values instead of ``cls(**values)``.

    Unknown keys, missing required keys and bad values raise :class:`SettingError`, and so does
    an InputError of the class's own checks, with ``where`` and the key added.
    """
    context = _Context(where, label)
    if not isinstance(data, Mapping):
        if key:
            raise context.error(key, data, "a table")
        raise SettingError(context.message(f"the settings must be a table of keys and values, got {data!r}"), "", where)
    return _build(cls, data, key, context, make)


@dataclasses.dataclass(frozen=True)
class _Context:
    where: str
    label: Label | None

    def show(self, path: str) -> str:
        return self.label(path) if self.label else path

    def message(self, body: str) -> str:
        return f"{self.where}: {body}" if self.where else body

    def error(self, path: str, value: Any, expected: str) -> SettingError:
        shown = self.show(path)
        return SettingError(self.message(f"{shown} = {value!r} must be {expected}"), shown, self.where)


@contextmanager
def _located(context: _Context, path: str) -> Iterator[None]:
    """Give an InputError of a class's own checks (or a build hook) the key and origin of its data."""
    try:
        yield
    except SettingError:
        raise
    except InputError as err:
        text, shown = str(err), context.show(path)
        body = f"{shown}: {text}" if shown and shown not in text else text
        raise SettingError(context.message(body), shown, context.where) from None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    # Annotations are strings under `from __future__ import annotations`; resolve them once per class.
    return typing.get_type_hints(cls)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _build(cls: type[T], data: Mapping[str, Any], path: str, context: _Context, make: Callable[..., T] | None) -> T:
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    unknown = [k for k in data if k not in names]
    if unknown:
        shown = sorted(context.show(_join(path, str(k))) for k in unknown)
        of = f" of {context.show(path)}" if path else ""
        raise SettingError(context.message(f"unknown key(s) {shown}; valid keys{of}: {sorted(names)}"),
                           context.show(path), context.where)
    missing = [f.name for f in fields if f.name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        what = context.show(path) or "the settings"
        raise SettingError(context.message(f"{what} misses required key(s) {missing}; valid keys: {sorted(names)}"),
                           context.show(path), context.where)
    hints = _hints(cls)
    values = {f.name: _convert(hints[f.name], data[f.name], _join(path, f.name), context, f.metadata)
              for f in fields if f.name in data}
    with _located(context, path):
        return (make or cls)(**values)


def _convert(tp: Any, value: Any, path: str, context: _Context, meta: Mapping[str, Any]) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value, path, context, meta)
        for option in options:
            try:
                return _convert(option, value, path, context, meta)
            except SettingError:
                pass
        raise context.error(path, value, _describe(tp, meta))
    if origin is Literal:
        if any(type(value) is type(a) and value == a for a in args):
            return value
        raise context.error(path, value, _describe(tp, meta))
    if origin is tuple:
        # A string is iterable but never a list of settings: "012" must not become ('0', '1', '2').
        if not isinstance(value, (list, tuple)):
            raise context.error(path, value, _describe(tp, meta))
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]", context, meta) for i, v in enumerate(value))
        if len(value) != len(args):
            raise context.error(path, value, _describe(tp, meta))
        return tuple(_convert(a, v, f"{path}[{i}]", context, meta) for i, (a, v) in enumerate(zip(args, value)))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise context.error(path, value, _describe(tp, meta))
        build = meta.get(BUILD)
        if build is None:
            return _build(tp, value, path, context, None)
        with _located(context, path):
            return build(value, where=context.where, key=path, label=context.label)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise context.error(path, value, _describe(tp, meta))
    if tp is int:
        # bool is an int subclass, but `chunk_rows = true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise context.error(path, value, _describe(tp, meta))
        return _check_range(int(value), value, path, context, tp, meta)
    if tp is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if not ok:
            raise context.error(path, value, _describe(tp, meta))
        # Stored as float so that 1 and 1.0 give equal settings and equal fingerprints.
        return _check_range(float(value), value, path, context, tp, meta)
    if tp is str:
        if isinstance(value, str):
            return value
        raise context.error(path, value, _describe(tp, meta))
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise context.error(path, value, _describe(tp, meta))


def _check_range(value: float, given: Any, path: str, context: _Context, tp: Any, meta: Mapping[str, Any]) -> Any:
    """``value`` (converted from ``given``, which errors show) if it lies in the field's declared bounds."""
    low, high = meta.get("ge"), meta.get("le")
    above, below = meta.get("gt"), meta.get("lt")
    ok = ((low is None or value >= low) and (high is None or value <= high)
          and (above is None or value > above) and (below is None or value < below))
    if not ok:
        raise context.error(path, given, _describe(tp, meta))
    return value


_NAMES = {int: ("an int", "ints"), float: ("a finite number", "finite numbers"), str: ("a string", "strings"),
          bool: ("true or false", "booleans")}


def _describe(tp: Any, meta: Mapping[str, Any], plural: bool = False) -> str:
    """What a value of type ``tp`` must be, in words: ``an int > 0``, ``a list of 2 ints >= 8``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union or origin is types.UnionType:
        return " or ".join(_describe(a, meta, plural) for a in args if a is not type(None))
    if origin is Literal:
        return f"one of {list(args)}"
    if origin is tuple:
        lists = "lists" if plural else "a list"
        if len(args) == 2 and args[1] is Ellipsis:
            return f"{lists} of {_describe(args[0], meta, plural=True)}"
        if len(set(args)) == 1:
            return f"{lists} of {len(args)} {_describe(args[0], meta, plural=True)}"
        return f"{lists} of {len(args)} values: " + ", ".join(_describe(a, meta) for a in args)
    if dataclasses.is_dataclass(tp):
        return "tables" if plural else "a table"
    if tp in _NAMES:
        name = _NAMES[tp][1 if plural else 0]
        bounds = [f"{symbol} {meta[key]}" for key, symbol in zip(BOUNDS, (">=", ">", "<=", "<")) if key in meta]
        return " ".join([name, " and ".join(bounds)]) if bounds and tp in (int, float) else name
    return getattr(tp, "__name__", str(tp))
