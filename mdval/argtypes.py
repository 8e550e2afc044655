"""Argument types and the help formatter shared by mdval's sub-commands.

A type turns one command-line string into a value or raises ``argparse.ArgumentTypeError``,
which argparse prints as one line that names the option, the value and what it must be::

    mdval md nve: error: argument --np: must be an integer >= 1, got '0'

:class:`HelpFormatter` shows every option's default once, as "(default: X)".
"""

from __future__ import annotations

import argparse
import difflib
import math


def _integer(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (steps, intervals, MPI ranks, supercell repeats)."""
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds, equilibration steps)."""
    return _integer(text, 0)


def _number(text: str, lowest: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    fits = {"any": True, ">= 0": value >= 0, "> 0": value > 0}[lowest]
    if not (math.isfinite(value) and fits):
        what = "a finite number" if lowest == "any" else f"a finite number {lowest}"
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (time steps, temperatures, durations, lengths)."""
    return _number(text, "> 0")


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (warm-up times, thresholds)."""
    return _number(text, ">= 0")


def finite_float(text: str) -> float:
    """Any finite number (a pressure may be negative; NaN and inf are still mistakes)."""
    return _number(text, "any")


def element_problem(symbol) -> str | None:
    """Why ``symbol`` is not a chemical element symbol (with the closest one), or None if it is."""
    from ase.data import chemical_symbols

    symbols = chemical_symbols[1:]  # [0] is "X", ASE's dummy atom
    if symbol in symbols:
        return None
    close = difflib.get_close_matches(str(symbol).capitalize(), symbols, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "give a symbol such as Cu, Al or Si"
    return f"{symbol!r} is not a chemical element symbol; {hint}"


def element_symbol(text: str) -> str:
    """A chemical element symbol as ASE spells it (Cu, not cu or Cux)."""
    problem = element_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" once to every option that has a default and a help string.

    argparse's own formatter also adds "(default: None)" and "(default: False)", and repeats a
    default that the help already states. Here an option whose default is None or a flag's False
    gets nothing (its help says what happens without it), and a help that already says
    "(default" is left alone. Options without a help string get no line at all: give every
    option one.
    """

    @staticmethod
    def _has_default(action) -> bool:
        return action.default is not None and action.default is not False and action.default != argparse.SUPPRESS

    def _get_help_string(self, action):
        text = (action.help or "").strip()
        if not action.option_strings or not self._has_default(action) or "(default" in text:
            return text
        return f"{text} (default: %(default)s)".strip()
