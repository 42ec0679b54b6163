"""Named choices: modes are string enums so config files spell them as strings."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar


class StrEnum(str, Enum):
    """A string-valued enum (``enum.StrEnum`` exists only from Python 3.11)."""

    def __str__(self) -> str:
        return str(self.value)


E = TypeVar("E", bound=StrEnum)


def parse_enum(enum_cls: type[E], value: str | E, what: str) -> E:
    """``enum_cls(value)``, or a ValueError naming ``what`` and listing the valid choices."""
    try:
        return enum_cls(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in enum_cls)
        raise ValueError(f"unknown {what} {value!r}; choose one of {choices}") from None
