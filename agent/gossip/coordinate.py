"""Vivaldi network coordinates, as serf keeps them (Consul's /v1/coordinate and `?near=`).

Each member holds a point in an 8-dimensional Euclidean space plus a "height" (the access-link
latency no direction explains). Every direct probe's round-trip time pulls our point towards or
away from the peer's, weighted by how confident each side is (`error`). `adjustment` is a
running correction from the recent residuals, and a weak gravity keeps the whole system from
drifting away from the origin. Pure and deterministic given the rng.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import msgspec

ZERO = 1.0e-6
MAX_RTT = 10.0


@dataclass(frozen=True, slots=True)
class VivaldiConfig:
    dimensionality: int = 8
    error_max: float = 1.5
    ce: float = 0.25
    cc: float = 0.25
    adjustment_window: int = 20
    height_min: float = 10.0e-6
    latency_filter_size: int = 3
    gravity_rho: float = 150.0


class Coordinate(msgspec.Struct, frozen=True, array_like=True):
    vec: tuple[float, ...]
    error: float
    adjustment: float
    height: float

    @classmethod
    def origin(cls, cfg: VivaldiConfig) -> Coordinate:
        return cls((0.0,) * cfg.dimensionality, cfg.error_max, 0.0, cfg.height_min)

    def raw_distance(self, other: Coordinate) -> float:
        return _norm(_sub(self.vec, other.vec)) + self.height + other.height

    def distance(self, other: Coordinate) -> float:
        """Estimated RTT in seconds; adjustments apply unless they would make it negative."""
        dist = self.raw_distance(other)
        adjusted = dist + self.adjustment + other.adjustment
        return adjusted if adjusted > 0.0 else dist

    def is_valid(self, cfg: VivaldiConfig) -> bool:
        values = (*self.vec, self.error, self.adjustment, self.height)
        return len(self.vec) == cfg.dimensionality and all(math.isfinite(v) for v in values)

    def api_dict(self) -> dict[str, Any]:
        """Consul's JSON shape (`Coord` of /v1/coordinate/nodes)."""
        return {
            "Vec": list(self.vec),
            "Error": self.error,
            "Adjustment": self.adjustment,
            "Height": self.height,
        }


def _sub(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(x - y for x, y in zip(a, b, strict=True))


def _norm(a: tuple[float, ...]) -> float:
    return math.sqrt(sum(x * x for x in a))


@dataclass(slots=True)
class VivaldiClient:
    config: VivaldiConfig = field(default_factory=VivaldiConfig)
    rng: random.Random = field(default_factory=random.Random)
    coord: Coordinate = field(init=False)
    _samples: dict[str, list[float]] = field(default_factory=dict)
    _adjust: list[float] = field(init=False)
    _adjust_index: int = 0

    def __post_init__(self) -> None:
        self.coord = Coordinate.origin(self.config)
        self._adjust = [0.0] * self.config.adjustment_window

    def forget(self, node: str) -> None:
        self._samples.pop(node, None)

    def update(self, node: str, other: Coordinate, rtt: float) -> bool:
        """Fold one RTT sample to `node` (whose coordinate is `other`) into ours.
        Returns False (and changes nothing) for a bad sample or coordinate."""
        cfg = self.config
        if not other.is_valid(cfg) or not (0.0 <= rtt <= MAX_RTT):
            return False
        rtt = self._filter(node, rtt)
        before = self.coord
        self._vivaldi(other, rtt)
        self._adjustment(other, rtt)
        self._gravity()
        if not self.coord.is_valid(cfg):
            self.coord = before  # numerical blow-up: keep the last good coordinate
            return False
        return True

    def _filter(self, node: str, rtt: float) -> float:
        # Median of the last few samples per peer smooths out one-off delays.
        samples = self._samples.setdefault(node, [])
        samples.append(rtt)
        if len(samples) > self.config.latency_filter_size:
            del samples[0]
        return sorted(samples)[len(samples) // 2]

    def _vivaldi(self, other: Coordinate, rtt: float) -> None:
        cfg, me = self.config, self.coord
        rtt = max(rtt, ZERO)
        dist = me.distance(other)
        wrongness = abs(dist - rtt) / rtt
        total_error = max(me.error + other.error, ZERO)
        weight = me.error / total_error
        error = min(cfg.ce * weight * wrongness + me.error * (1.0 - cfg.ce * weight), cfg.error_max)
        force = cfg.cc * weight * (rtt - dist)
        moved = self._apply_force(me, force, other)
        self.coord = Coordinate(moved.vec, error, moved.adjustment, moved.height)

    def _adjustment(self, other: Coordinate, rtt: float) -> None:
        window = self.config.adjustment_window
        if window == 0:
            return
        self._adjust[self._adjust_index] = rtt - self.coord.raw_distance(other)
        self._adjust_index = (self._adjust_index + 1) % window
        me = self.coord
        self.coord = Coordinate(me.vec, me.error, sum(self._adjust) / (2.0 * window), me.height)

    def _gravity(self) -> None:
        origin = Coordinate.origin(self.config)
        dist = origin.distance(self.coord)
        force = -((dist / self.config.gravity_rho) ** 2)
        self.coord = self._apply_force(self.coord, force, origin)

    def _apply_force(self, me: Coordinate, force: float, other: Coordinate) -> Coordinate:
        unit, mag = self._unit_vector(me.vec, other.vec)
        vec = tuple(v + u * force for v, u in zip(me.vec, unit, strict=True))
        height = me.height
        if mag > ZERO:
            height = max(
                (me.height + other.height) * force / mag + me.height, self.config.height_min
            )
        return Coordinate(vec, me.error, me.adjustment, height)

    def _unit_vector(
        self, a: tuple[float, ...], b: tuple[float, ...]
    ) -> tuple[tuple[float, ...], float]:
        diff = _sub(a, b)
        mag = _norm(diff)
        if mag > ZERO:
            return tuple(x / mag for x in diff), mag
        # Two points on top of each other: push in a random direction to separate them.
        rand = tuple(self.rng.random() - 0.5 for _ in a)
        rmag = _norm(rand)
        if rmag > ZERO:
            return tuple(x / rmag for x in rand), 0.0
        return (1.0,) + (0.0,) * (len(a) - 1), 0.0
