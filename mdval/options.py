"""What one option value may be (a :class:`Rule`) and the one-line message when it is not.

The training config (``mdval.train.config.RULES``) and the model options
(``mdval.nn.build.OPTION_RULES``) are checked through this, so that every bad value gets the
same kind of message: the option, what it must be (with its unit), the value given and a fix::

    learning_rate.start_lr must be a number > 0, got the text '1e-3'; write start_lr = 0.001 instead
    training.epochs must be a whole number >= 1, got true; e.g. epochs = 100

Booleans are refused where numbers are expected (``True`` is an ``int`` in Python), and so are
strings that look like numbers (a quoted TOML value): both would otherwise be used silently or
fail deep inside torch.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass

#: The kinds of value a rule accepts; "numbers"/"wholes" are lists whose elements obey the bounds.
KINDS: tuple[str, ...] = ("number", "whole", "flag", "text", "numbers", "wholes", "texts")


@dataclass(frozen=True)
class Rule:
    """The values an option accepts.

    ``low``/``high`` bound numbers (each element of a list); ``open_low``/``open_high`` exclude
    the bound itself. ``note`` gives the unit or meaning, ``example`` a valid value for the fix.
    ``optional``: ``None`` is accepted. ``finite``: NaN and infinities are refused.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    note: str = ""
    example: object = None
    optional: bool = False
    finite: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"rule kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    def item(self) -> Rule:
        """The rule of each element of a list kind."""
        return Rule(self.kind[:-1], self.low, self.high, self.open_low, self.open_high, finite=self.finite)

    def expected(self) -> str:
        """What the value must be, in words: "a number > 0 (Å)"."""
        base = {
            "number": "a number",
            "whole": "a whole number",
            "flag": "true or false",
            "text": "a string",
            "numbers": "a list of numbers",
            "wholes": "a list of whole numbers",
            "texts": "a list of strings",
        }[self.kind]
        bounds = self._bounds()
        text = f"{base} {bounds}" if bounds else base
        return f"{text} ({self.note})" if self.note else text

    def _bounds(self) -> str:
        lo = None if self.low is None else f"{self.low:g}"
        hi = None if self.high is None else f"{self.high:g}"
        if lo is not None and hi is not None:
            return f"in {'(' if self.open_low else '['}{lo}, {hi}{')' if self.open_high else ']'}"
        if lo is not None:
            return f"{'>' if self.open_low else '>='} {lo}"
        if hi is not None:
            return f"{'<' if self.open_high else '<='} {hi}"
        return ""

    def accepts(self, value) -> bool:
        if value is None:
            return self.optional
        if self.kind in ("numbers", "wholes", "texts"):
            return isinstance(value, (list, tuple)) and all(self.item().accepts(v) for v in value)
        if self.kind == "flag":
            return isinstance(value, bool)
        if self.kind == "text":
            return isinstance(value, str)
        if isinstance(value, bool) or not isinstance(value, int if self.kind == "whole" else (int, float)):
            return False
        return self._in_bounds(value)

    def _in_bounds(self, value) -> bool:
        if math.isnan(value) or (self.finite and math.isinf(value)):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)


def check(name: str, value, rule: Rule, assign: Callable[[object], str]) -> None:
    """Raise ``ValueError`` naming ``name``, the rule, ``value`` and a fix unless ``rule`` accepts it.

    ``assign(v)`` writes the fix as the user would type it (``"epochs = 100"`` in a config file,
    ``"--set training.epochs=100"`` on the command line).
    """
    if rule.accepts(value):
        return
    meant = _meant(value, rule)
    if meant is not None:
        fix = f"; write {assign(meant)} instead"
    else:
        fix = "" if rule.example is None else f"; e.g. {assign(rule.example)}"
    raise ValueError(f"{name} must be {rule.expected()}, got {shown(value)}{fix}")


def _meant(value, rule: Rule):
    """The valid value the user most likely meant: a number written as a quoted string ("1e-3"),
    a whole number written with a decimal point (100.0), a name written without quotes (5);
    ``None`` if there is none."""
    if rule.kind in ("numbers", "wholes"):
        if not isinstance(value, (list, tuple)):
            return None
        items = [v if rule.item().accepts(v) else _meant(v, rule.item()) for v in value]
        return items if rule.accepts(items) else None
    if rule.kind == "text" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # name = 5 meant name = "5"
    candidate = None
    if isinstance(value, str) and rule.kind in ("number", "whole"):
        try:
            candidate = float(value.strip())
        except ValueError:
            return None
    elif isinstance(value, float) and not isinstance(value, bool):
        candidate = value
    if candidate is None:
        return None
    if rule.kind == "whole":
        if not math.isfinite(candidate) or candidate != int(candidate):
            return None
        candidate = int(candidate)
    return candidate if rule.accepts(candidate) else None


def shown(value) -> str:
    """``value`` as the user wrote it in TOML (strings are called text so that quotes stand out)."""
    if isinstance(value, str):
        return f"the text {value!r}"
    return toml_text(value)


def toml_text(value, compact: bool = False) -> str:
    """A TOML literal for ``value`` (``true``, ``0.001``, ``"tanh"``, ``[8, 16]``, ``{ a = 1 }``);
    ``compact``: no spaces in lists and tables, so that it stays one shell word after ``--set``."""
    sep = "," if compact else ", "
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # TOML: inf, -inf, nan
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + sep.join(toml_text(v, compact) for v in value) + "]"
    if isinstance(value, (datetime.date, datetime.time)):  # TOML has dates and times too
        return value.isoformat()
    if isinstance(value, dict):
        items = sep.join(
            f"{k}={toml_text(v, compact)}" if compact else f"{k} = {toml_text(v)}"
            for k, v in value.items()
            if v is not None
        )
        return "{" + items + "}" if compact else "{ " + items + " }"
    raise ValueError(f"cannot write {value!r} as TOML")
