"""Names that become directory names and partition keys: one rule for all, ``real`` reserved, and methods.

A leaf module: it imports nothing of the project but its errors, so every
layer can check a name the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from manifpt_core.errors import InputError

REAL = "real"  # the real images' source: reserved, never a generative model's name
NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
NAME_RULE = re.compile(NAME_PATTERN)
NAME_HELP = "1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"


def check_name(kind: str, name: object) -> str:
    """``name`` if it matches :data:`NAME_PATTERN` whole (a trailing newline is refused too), else InputError."""
    if not isinstance(name, str) or NAME_RULE.fullmatch(name) is None:
        raise InputError(f"invalid {kind} name {name!r}: use {NAME_HELP}")
    return name


def check_model_name(name: object, where: str = "a generative model") -> str:
    """A generative model's name: the common rule, and never ``real`` (it would overwrite the real images)."""
    check_name("model", name)
    if name == REAL:
        raise InputError(f"{where}: the model name {REAL!r} is reserved for the real images; rename the model "
                         "(the zoo entry, the folder or the partition)")
    return name


ARTIFACT_KINDS = ("nearest", "knn")
CONTROL = "raw"  # the raw-image control: the attributors' network on the images instead of artifacts
_BASELINE_PREFIX = "baseline:"


@dataclass(frozen=True, order=True)
class Method:
    """One row of the attribution table: a space's artifacts of one kind, the raw-image control, or a baseline.

    Its canonical string (``str(method)``) is ``rgb`` (nearest artifacts), ``rgb-knn`` (another kind),
    ``raw`` (the control) or ``baseline:durall-lr``; :meth:`parse` reads it back.
    """

    family: str  # "artifacts", "control" or "baseline"
    space: str | None = None
    kind: str | None = None
    baseline: str | None = None

    def __post_init__(self) -> None:
        if self.family == "artifacts":
            check_name("space", self.space)
            if "-" in self.space:
                raise InputError(f"space name {self.space!r} must not contain '-': method names join space and kind with it")
            if self.kind not in ARTIFACT_KINDS:
                raise InputError(f"artifact kind {self.kind!r} is not one of {list(ARTIFACT_KINDS)}")
        elif self.family == "baseline":
            check_name("baseline", self.baseline)
        elif self.family != "control":
            raise InputError(f"method family {self.family!r} is not one of ['artifacts', 'control', 'baseline']")

    @classmethod
    def artifacts(cls, space: str, kind: str = "nearest") -> Method:
        return cls("artifacts", space=space, kind=kind)

    @classmethod
    def control(cls) -> Method:
        return cls("control")

    @classmethod
    def of_baseline(cls, name: str) -> Method:
        return cls("baseline", baseline=name)

    @classmethod
    def parse(cls, text: str) -> Method:
        """The method a canonical string names; anything else is an InputError listing the forms."""
        if not isinstance(text, str):
            raise InputError(f"a method name is a string, got {text!r}")
        if text == CONTROL:
            return cls.control()
        if text.startswith(_BASELINE_PREFIX):
            return cls.of_baseline(text[len(_BASELINE_PREFIX):])
        space, dash, kind = text.partition("-")
        if dash and not kind:
            raise InputError(f"method {text!r} ends with '-'; write <space> or <space>-<kind>")
        try:
            return cls.artifacts(space, kind or "nearest")
        except InputError as err:
            raise InputError(f"{text!r} is not a method name ({err}); write <space> (nearest artifacts), "
                             f"<space>-<kind> (kinds {list(ARTIFACT_KINDS)}), {CONTROL!r} or "
                             f"{_BASELINE_PREFIX}<name>") from None

    def __str__(self) -> str:
        if self.family == "control":
            return CONTROL
        if self.family == "baseline":
            return _BASELINE_PREFIX + self.baseline
        return self.space if self.kind == "nearest" else f"{self.space}-{self.kind}"

    @property
    def is_artifacts(self) -> bool:
        return self.family == "artifacts"

    @property
    def is_control(self) -> bool:
        return self.family == "control"

    @property
    def is_baseline(self) -> bool:
        return self.family == "baseline"

    @property
    def slug(self) -> str:
        """The method as a file-name part (figures of the report): the canonical form with ':' as '-'."""
        return str(self).replace(":", "-")
