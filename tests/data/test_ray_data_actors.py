"""The driver starts Ray Data's cluster-wide helper actors before any stream (pipeline.start_ray_data_actors)."""

import pytest
import ray

from reid.data.pipeline import start_ray_data_actors
from reid.ray_runtime import start_local_ray

pytestmark = [pytest.mark.ray]


@pytest.mark.timeout(180)
def test_ray_data_s_cluster_actors_start_before_any_stream_and_ray_data_finds_them():
    from ray.data._internal.cluster_autoscaler import get_or_create_autoscaling_coordinator
    from ray.data._internal.stats import STATS_ACTOR_NAME, STATS_ACTOR_NAMESPACE, get_or_create_stats_actor

    start_local_ray(num_cpus=1, object_store_memory=100 * 1024**2, include_dashboard=False, log_to_driver=False)
    try:
        names = [(STATS_ACTOR_NAME, STATS_ACTOR_NAMESPACE), ("AutoscalingCoordinator", "AutoscalingCoordinator")]
        for name, namespace in names:  # a fresh cluster: Ray Data creates them on first use only
            with pytest.raises(ValueError):
                ray.get_actor(name, namespace=namespace)
        handles = start_ray_data_actors()
        ray.get([h.__ray_ready__.remote() for h in handles], timeout=120)
        found = [ray.get_actor(name, namespace=namespace) for name, namespace in names]
        assert [h._actor_id for h in found] == [h._actor_id for h in handles]
        # Ray Data's own lookups (what an execution calls) get the same actors, not a second pair
        assert get_or_create_stats_actor()._actor_id == handles[0]._actor_id
        assert get_or_create_autoscaling_coordinator()._actor_id == handles[1]._actor_id
        assert [h._actor_id for h in start_ray_data_actors()] == [h._actor_id for h in handles]  # idempotent
    finally:
        ray.shutdown()


def test_a_failure_to_start_them_ahead_never_fails_the_caller(monkeypatch):
    import ray.data._internal.stats as stats

    def refuse():
        raise RuntimeError("Ray is not initialized. Driver might be not connected to Ray.")

    monkeypatch.setattr(stats, "get_or_create_stats_actor", refuse)
    assert start_ray_data_actors() == []
