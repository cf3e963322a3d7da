"""The Ray head's GCS killed under load (issue 15, item 8), with GCS fault tolerance on Redis.

As KubeRay's GCS fault tolerance runs it: the head keeps the cluster's
state in an external Redis (``RAY_REDIS_ADDRESS``; here Debian's
``redis-server``, started by the test), so a GCS that dies can be started
again and find the cluster as it was. Under Locust load on ``auto``, the
GCS is killed with SIGKILL, stays down while the load goes on, and is then
started again against the same Redis, exactly as it was started (its
command and environment), as a restarted head would.

Serve's data path does not need the GCS: HAProxy, the routers and the
model replicas talk to each other directly. So every request is served
while it is down, and afterwards the garden is whole again: Serve's
controller answers (``garden status``) and reports every deployment
healthy, and the raylets (the head's and the second node's) are still the
cluster's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from cluster.processes import kill_tree, serve_replicas
from tests._redis import redis_server
from tests.faults.conftest import SPECIALIST, FaultGarden, fault_garden, finish, records_of

pytestmark = [pytest.mark.faults]

PROMPT = "What is the first-line treatment for type 2 diabetes, and what are its side effects?"
#: Seconds of load before the kill, and how long the GCS stays down.
BEFORE_S, DOWN_S = 15.0, 20.0
LOAD_S = 90


def _whole(garden: FaultGarden) -> bool:
    """Whether ``garden status --json`` answers and reports every deployment healthy."""
    done = garden.garden("status", "--json", timeout_s=60)
    if done.returncode != 0:
        return False
    deployments = json.loads(done.stdout)["deployments"]
    return bool(deployments) and all(d["status"] == "HEALTHY" for d in deployments)


def test_a_killed_gcs_costs_no_request_and_the_garden_is_whole_after_its_restart(
    tmp_path: Path,
) -> None:
    with redis_server() as url:
        address = url.removeprefix("redis://").split("/")[0]
        env = {"RAY_REDIS_ADDRESS": address, "RAY_external_storage_namespace": "garden-faults"}
        with fault_garden(tmp_path, cluster_env=env) as garden:
            assert garden.served_by("auto", PROMPT).status_code == 200
            load = garden.loadtest(LOAD_S, tmp_path / "load")
            time.sleep(BEFORE_S)
            killed_at = time.time()
            garden.cluster.kill_gcs()
            time.sleep(DOWN_S)
            # Served with no GCS: a fresh request, besides Locust's.
            during = garden.served_by("auto", PROMPT)
            assert during.status_code == 200, during.text
            restarted_at = time.time()
            garden.cluster.restart_gcs()
            whole_s = garden.wait_for(
                "garden status reporting every deployment healthy",
                lambda: _whole(garden),
                120,
                every_s=2,
            )
            summary = finish(load, timeout_s=LOAD_S + 120)
            nodes = {name: len(garden.cluster.processes(name)) for name in ("head", "spare")}
            # The new GCS runs the cluster, not only answers: replacing a killed
            # replica needs it (actor and placement group creation).
            (victim,) = serve_replicas("garden", SPECIALIST)
            kill_tree([victim])
            garden.wait_for(
                "Serve replacing the specialist's killed replica",
                lambda: (
                    [p.pid for p in serve_replicas("garden", SPECIALIST)] not in ([], [victim.pid])
                ),
                60,
            )
            replaced_s = garden.wait_for(
                "the replacement serving",
                lambda: garden.model_serving("auto", PROMPT) == SPECIALIST,
                180,
                every_s=2,
            )
            stored = redis.Redis.from_url(url).dbsize()  # reported: the GCS's tables

    rows = records_of(tmp_path / "load")
    failed = [r for r in rows if not r["ok"]]
    down = [r for r in rows if killed_at <= r["start"] < restarted_at]
    print(
        json.dumps(
            {
                "requests": len(rows),
                "served": len(rows) - len(failed),
                "failed": len(failed),
                "sent_while_gcs_down": len(down),
                "gcs_down_s": round(restarted_at - killed_at, 1),
                "whole_after_restart_s": round(whole_s, 1),
                "summary_failures": summary.get("failures"),
                "node_processes_after": nodes,
                "replica_replaced_after_s": round(replaced_s, 1),
                "redis_keys": stored,
            }
        )
    )
    assert not failed, failed[:5]
    assert len(down) > 20, f"only {len(down)} requests were sent while the GCS was down"
    assert all(nodes.values()), f"a node did not survive the GCS outage: {nodes}"
