"""A rollout policy: shadow phase, canary steps and their success conditions, declared as data.

Loaded strictly: an unknown key, a metric that does not exist (or cannot be
measured in that phase), a step outside (0, 100) or steps that do not grow
are refused with the place they were found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.errors import ConfigError
from mlops.platform.config_files import mapping, number

# metric -> phases it can be measured in
METRICS = {
    "error_rate": ("shadow", "canary"),
    "agreement": ("shadow",),
    "p50_latency_ms": ("shadow", "canary"),
    "p50_latency_ratio": ("shadow", "canary"),
    "p99_latency_ms": ("shadow", "canary"),
    "p99_latency_ratio": ("shadow", "canary"),
    "positive_rate_delta": ("shadow", "canary"),
    "mean_score_delta": ("shadow", "canary"),
}


@dataclass(frozen=True)
class Condition:
    metric: str
    min: float | None = None
    max: float | None = None

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        bounds = [f">= {self.min:g}"] if self.min is not None else []
        bounds += [f"<= {self.max:g}"] if self.max is not None else []
        return f"{self.metric} {' and '.join(bounds)}"


@dataclass(frozen=True)
class Phase:
    min_requests: int
    timeout_s: float
    success: tuple[Condition, ...]


@dataclass(frozen=True)
class RolloutPolicy:
    shadow: Phase | None
    canary_steps: tuple[int, ...]
    canary: Phase
    poll_s: float = 1.0
    source: str = field(default="", compare=False)


def _phase(raw: Any, where: str, name: str) -> Phase:
    raw = mapping(raw, where, {"min_requests", "timeout_s", "success", "steps"} if name == "canary"
                   else {"min_requests", "timeout_s", "success"}, {"min_requests", "timeout_s", "success"})
    if not isinstance(raw["success"], list) or not raw["success"]:
        raise ConfigError(f"{where}.success must be a non-empty list of conditions")
    conditions = []
    for i, item in enumerate(raw["success"]):
        at = f"{where}.success[{i}]"
        item = mapping(item, at, {"metric", "min", "max"}, {"metric"})
        metric = item["metric"]
        if metric not in METRICS:
            raise ConfigError(f"{at}: unknown metric {metric!r}; known: {sorted(METRICS)}")
        if name not in METRICS[metric]:
            raise ConfigError(f"{at}: {metric} cannot be measured in the {name} phase (only in {METRICS[metric]})")
        if "min" not in item and "max" not in item:
            raise ConfigError(f"{at}: give a min, a max or both")
        conditions.append(Condition(metric, *(number(item[k], f"{at}.{k}", 0.0) if k in item else None
                                              for k in ("min", "max"))))
    min_requests = raw["min_requests"]
    if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 1:
        raise ConfigError(f"{where}.min_requests must be a positive integer, got {min_requests!r}")
    return Phase(min_requests, number(raw["timeout_s"], f"{where}.timeout_s", 1.0), tuple(conditions))


def parse_policy(raw: Any, where: str = "rollout policy") -> RolloutPolicy:
    raw = mapping(raw, where, {"shadow", "canary", "poll_s"}, {"canary"})
    canary = mapping(raw["canary"], f"{where}: canary", {"steps", "min_requests", "timeout_s", "success"}, {"steps"})
    steps = canary["steps"]
    if (not isinstance(steps, list) or not steps
            or any(isinstance(s, bool) or not isinstance(s, int) or not 0 < s < 100 for s in steps)):
        raise ConfigError(f"{where}: canary.steps must be a list of integer percents in (0, 100), got {steps!r}; "
                          "passing the last step promotes to 100%")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ConfigError(f"{where}: canary.steps must grow, got {steps}")
    shadow = _phase(raw["shadow"], f"{where}: shadow", "shadow") if raw.get("shadow") is not None else None
    return RolloutPolicy(shadow, tuple(steps), _phase(canary, f"{where}: canary", "canary"),
                         number(raw.get("poll_s", 1.0), f"{where}: poll_s", 0.05, 60.0), where)


def load_policy(path: str | Path) -> RolloutPolicy:
    from mlops.platform.config_files import read_yaml

    return parse_policy(read_yaml(path, "rollout policy"), str(path))


def resolve_policy(ref: str, cache_dir: Path, store=None) -> RolloutPolicy:
    """A rollout policy from a local path (a project's rollout.yaml) or an s3:// URI."""
    from mlops.platform.config_files import resolve_config_file

    return load_policy(resolve_config_file(ref, "rollout policy", cache_dir, store))
