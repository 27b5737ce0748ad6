"""How a rollout moves traffic: locally through the splitter, in a cluster through the InferenceService.

Both drivers offer the same verbs to the controller: deploy a version,
mirror to it (shadow), give it a share of live traffic (canary), finish
with one winner, and tell where the transformers' metrics are.
"""

from __future__ import annotations

import time
from typing import Protocol

from mlops.errors import RolloutError
from mlops.platform.storage import ObjectStore
from mlops.rollout.analysis import scrape
from mlops.serving.routing import Routing, ShadowTarget, write_routing


class TrafficDriver(Protocol):
    def deploy(self, version: str) -> None: ...
    def start_shadow(self, version: str) -> None: ...
    def stop_shadow(self) -> None: ...
    def set_canary(self, stable: str, candidate: str, percent: int) -> None: ...
    def finish(self, winner: str, loser: str) -> None: ...
    def metrics_urls(self) -> list[str]: ...
    def describe(self) -> str: ...


def wait_for_shadow(driver: TrafficDriver, target: ShadowTarget | None, timeout_s: float = 30.0) -> None:
    """Wait until every transformer mirrors to ``target`` (None: to nothing); they poll the routing document."""
    want = None if target is None else (target.model_version, target.url)
    deadline = time.monotonic() + timeout_s
    while True:
        urls = driver.metrics_urls()
        active: dict[tuple[str, str], float] = {}
        for key, value in scrape(urls).items():
            labels = dict(key[1])
            if key[0] == "mlops_shadow_target_info" and value > 0:
                pair = (labels.get("model_version", ""), labels.get("url", ""))
                active[pair] = active.get(pair, 0) + value
        if (want is None and not active) or (want is not None and set(active) == {want}
                                             and active[want] >= len(urls)):
            return
        if time.monotonic() > deadline:
            raise RolloutError(f"the transformers did not switch their shadow to "
                               f"{'v' + want[0] + ' at ' + want[1] if want else 'none'} within {timeout_s:.0f} s "
                               f"(they mirror to {sorted(active) or 'nothing'})")
        time.sleep(0.2)


class LocalTraffic:
    """Drives `mlops serve`'s processes: predictors per version, the splitter, the transformer."""

    def __init__(self, serving, store: ObjectStore, faults: dict[str, dict] | None = None) -> None:
        self.serving, self.store = serving, store
        self.faults = faults or {}  # rehearsal: injected per version at the splitter, like a mesh's fault injection
        self._urls: dict[str, str] = {}

    def describe(self) -> str:
        return f"local serving of {self.serving.model_name} ({self.serving.urls().get('transformer', 'not running')})"

    def deploy(self, version: str) -> None:
        self._urls[version] = self.serving.deploy(version)

    def start_shadow(self, version: str) -> None:
        target = ShadowTarget(self._urls.get(version) or self.serving.deploy(version), version)
        write_routing(self.store, self.serving.model_name, Routing(target))
        wait_for_shadow(self, target)

    def stop_shadow(self) -> None:
        write_routing(self.store, self.serving.model_name, Routing())
        wait_for_shadow(self, None)

    def set_canary(self, stable: str, candidate: str, percent: int) -> None:
        self.serving.set_routes({stable: 100 - percent, candidate: percent}, self.faults)

    def finish(self, winner: str, loser: str) -> None:
        self.serving.set_routes({winner: 100})
        self.serving.retire(loser)

    def metrics_urls(self) -> list[str]:
        url = self.serving.urls().get("transformer")
        if not url:
            raise RolloutError(f"no transformer is serving {self.serving.model_name}; start it with `mlops serve up`")
        return [url + "/metrics"]
