"""Stability detectors, live in every MD protocol (DESIGN.md section 6).

A :class:`StabilityMonitor` is asked after every checked step whether the run is still sane. It
returns ``None`` or a :class:`Failure` naming the first violated condition:

- a non-finite potential energy or force (NaN/inf);
- temperature above ``temperature_limit_factor`` × the target temperature;
- a minimum interatomic distance (nearest periodic image) below ``min_distance_A``;
- a box volume change |V/V0 - 1| above ``max_volume_change``;
- (LAMMPS only, detected from the log by the engine) lost atoms.

A failure is a result, not a crash: the engines stop, record time-to-failure and the reason, and
write the results JSON with status "failed".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class StabilityLimits:
    """Limits of the stability detectors.

    ========================  =====  ===========================================================
    field                     unit   meaning
    ========================  =====  ===========================================================
    temperature_limit_factor  -      fail when T > factor × target T (e.g. 5)
    min_distance_A            Å      fail when any pair (nearest image) is closer than this
    max_volume_change         -      fail when |V/V0 - 1| exceeds this fraction (e.g. 0.5)
    check_interval            steps  run the detectors every this many steps
    ========================  =====  ===========================================================
    """

    temperature_limit_factor: float = 5.0
    min_distance_A: float = 0.5
    max_volume_change: float = 0.5
    check_interval: int = 10

    def __post_init__(self):
        for name in ("temperature_limit_factor", "min_distance_A", "max_volume_change"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
            if not (number and value > 0):
                raise ValueError(f"StabilityLimits.{name} must be a positive number, got {value!r}")
        if not (
            isinstance(self.check_interval, int)
            and not isinstance(self.check_interval, bool)
            and self.check_interval >= 1
        ):
            raise ValueError(f"StabilityLimits.check_interval must be an integer >= 1, got {self.check_interval!r}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Failure:
    """Why and when a run failed."""

    detector: str  # "non_finite" | "temperature" | "min_distance" | "volume" | "lost_atoms" | "engine_error"
    reason: str
    step: int
    time_ps: float

    def as_dict(self) -> dict:
        return asdict(self)


def min_distance_A(positions, cell, pbc, cutoff_A: float) -> float:
    """Shortest interatomic distance (Å, nearest periodic image) if below ``cutoff_A``, else inf.

    Uses a vesin neighbour list with radius ``cutoff_A``, so the cost is O(N) and tiny for a small
    radius.
    """
    from mdval.data.neighbors import neighbor_list

    nl = neighbor_list(positions, cell, pbc, cutoff_A)
    if nl.n_edges == 0:
        return float("inf")
    return float(np.sqrt(np.min(np.einsum("ed,ed->e", nl.vectors, nl.vectors))))


class StabilityMonitor:
    """Checks one MD state against :class:`StabilityLimits` for a run at ``temperature_K``.

    ``reference_volume_A3`` is V0 for the volume detector (the volume at the start of the run).
    """

    def __init__(self, limits: StabilityLimits, *, temperature_K: float, reference_volume_A3: float):
        self.limits = limits
        self.temperature_K = float(temperature_K)
        self.reference_volume_A3 = float(reference_volume_A3)

    @property
    def temperature_limit_K(self) -> float:
        return self.limits.temperature_limit_factor * self.temperature_K

    def check(
        self,
        *,
        step: int,
        time_ps: float,
        energy_eV: float | None = None,
        forces=None,
        temperature_K: float | None = None,
        positions=None,
        cell=None,
        pbc=None,
        volume_A3: float | None = None,
    ) -> Failure | None:
        """The first violated condition at this state, or None. Arguments not given are skipped."""
        at = f"at step {step} ({time_ps:.4g} ps)"
        if energy_eV is not None and not np.isfinite(energy_eV):
            return Failure("non_finite", f"non-finite potential energy ({energy_eV}) {at}", step, time_ps)
        if forces is not None:
            bad = ~np.isfinite(np.asarray(forces, dtype=float))
            if bad.any():
                atoms = np.unique(np.nonzero(bad)[0])
                return Failure(
                    "non_finite",
                    f"non-finite forces on {atoms.size} atom(s) (first: atom {atoms[0]}) {at}",
                    step,
                    time_ps,
                )
        if temperature_K is not None:
            if not np.isfinite(temperature_K):
                return Failure("non_finite", f"non-finite temperature ({temperature_K}) {at}", step, time_ps)
            if temperature_K > self.temperature_limit_K:
                return Failure(
                    "temperature",
                    f"temperature {temperature_K:.0f} K exceeded limit {self.temperature_limit_K:.0f} K {at}",
                    step,
                    time_ps,
                )
        if volume_A3 is not None:
            change = volume_A3 / self.reference_volume_A3 - 1.0
            if not np.isfinite(change) or abs(change) > self.limits.max_volume_change:
                return Failure(
                    "volume",
                    f"volume {volume_A3:.5g} Å³ changed by {100 * change:+.1f}% from "
                    f"{self.reference_volume_A3:.5g} Å³, beyond the limit "
                    f"±{100 * self.limits.max_volume_change:.0f}% {at}",
                    step,
                    time_ps,
                )
        if positions is not None:
            if not np.all(np.isfinite(positions)):
                return Failure("non_finite", f"non-finite positions {at}", step, time_ps)
            d = min_distance_A(positions, cell, pbc, self.limits.min_distance_A)
            if d < self.limits.min_distance_A:
                return Failure(
                    "min_distance",
                    f"minimum interatomic distance {d:.3f} Å below the limit {self.limits.min_distance_A} Å {at}",
                    step,
                    time_ps,
                )
        return None
