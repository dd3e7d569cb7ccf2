"""ModelResidency alone (fast): which models the generator unloads, and when. The same
policy against a real TorchServe is pinned in test_torchserve_security.py."""

from __future__ import annotations

import threading

import pytest

from socialgan.serving.residency import ModelResidency


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def use(residency: ModelResidency, *model_ids: str) -> None:
    for model_id in model_ids:
        with residency.using(model_id):
            pass


def test_beyond_the_bound_the_least_recently_used_goes_first():
    residency = ModelResidency(max_loaded=2, idle_seconds=0, clock=Clock())
    use(residency, "a", "b", "a", "c")
    assert residency.take_evictions() == ["b"]
    assert residency.loaded() == ["a", "c"]
    assert residency.take_evictions() == []


def test_a_model_with_a_request_in_flight_is_never_unloaded():
    residency = ModelResidency(max_loaded=1, idle_seconds=0, clock=Clock())
    with residency.using("a"), residency.using("b"):
        assert residency.take_evictions() == []  # both busy: the bound waits
    assert residency.take_evictions() == ["b"]  # "a"'s request ended last


def test_room_is_made_before_the_new_model_loads():
    residency = ModelResidency(max_loaded=2, idle_seconds=0, clock=Clock())
    use(residency, "a", "b")
    with residency.using("c"):
        assert residency.take_evictions() == ["a"]


def test_idle_models_are_unloaded_after_the_timeout_and_zero_means_never():
    clock = Clock()
    residency = ModelResidency(max_loaded=5, idle_seconds=60, clock=clock)
    use(residency, "a")
    clock.now = 30
    use(residency, "b")
    clock.now = 61
    assert residency.take_evictions() == ["a"]
    clock.now = 1e9
    assert ModelResidency(5, 0, clock).take_evictions() == []
    assert residency.take_evictions() == ["b"]


def test_concurrent_use_keeps_counts_right():
    residency = ModelResidency(max_loaded=1, idle_seconds=0, clock=Clock())

    def hammer(model_id):
        for _ in range(500):
            use(residency, model_id)

    threads = [threading.Thread(target=hammer, args=(m,)) for m in ("a", "b", "a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(residency.take_evictions()) == 1 and len(residency.loaded()) == 1


def test_a_bound_below_one_is_refused():
    with pytest.raises(ValueError, match="max_loaded"):
        ModelResidency(max_loaded=0, idle_seconds=0)


def test_the_generator_refuses_a_bound_below_one_from_the_environment(monkeypatch, store):
    from socialgan.serving.backends import TorchServeBackend
    from socialgan.settings import ConfigError

    monkeypatch.setenv("TORCHSERVE_MAX_LOADED_MODELS", "0")
    with pytest.raises(ConfigError, match="TORCHSERVE_MAX_LOADED_MODELS"):
        TorchServeBackend.from_settings(store)
    monkeypatch.setenv("TORCHSERVE_MAX_LOADED_MODELS", "3")
    monkeypatch.setenv("TORCHSERVE_MODEL_IDLE_SECONDS", "-1")
    with pytest.raises(ConfigError, match="TORCHSERVE_MODEL_IDLE_SECONDS"):
        TorchServeBackend.from_settings(store)
