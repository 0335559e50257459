"""The completion rule (agent/outcome.py) that every target uses: who decides the job's exit code, and when."""
from __future__ import annotations

from areal_compiler.agent.outcome import Ended, decide, ended_from_states, exit_code_of, stop_stages

T0, T1, T2 = "2026-12-02T10:00:00+00:00", "2026-12-02T10:00:01+00:00", "2026-12-02T10:00:02+00:00"


def plan(driver=True, may_fail=(), gate=None):
    workers = [{"role": "actor", "index": 0}, {"role": "rollout", "index": 0}, {"role": "rollout", "index": 1}]
    if driver:
        workers.append({"role": "driver", "index": 0})
    return {"completion": {"driver": driver, "may_fail": list(may_fail)}, "workers": workers, "gate": gate}


def test_the_drivers_exit_decides():
    assert decide(plan(), [Ended("driver/0", 3, T1)], running=3)[:2] == (True, 3)
    assert decide(plan(), [Ended("driver/0", 0, T1)], running=3)[:2] == (True, 0)
    assert decide(plan(), [Ended("rollout/0", 0, T0)], running=3)[:2] == (False, None)  # a clean end changes nothing


def test_a_worker_failing_before_the_driver_decides_even_when_both_are_seen_at_once():
    both = [Ended("driver/0", 1, T2), Ended("actor/0", 2, T1)]
    decision = decide(plan(), both, running=2)
    assert decision[:2] == (True, 2) and "actor/0 failed with code 2" in decision.reason
    assert decide(plan(), [Ended("driver/0", 1, T0), Ended("actor/0", 2, T1)], running=2)[:2] == (True, 1)


def test_a_role_that_may_fail_is_reported_not_decisive():
    assert decide(plan(may_fail=["rollout"]), [Ended("rollout/1", 9, T0)], running=3)[:2] == (False, None)


def test_without_a_driver_the_first_failure_decides_and_fail_fast_stops_at_once():
    ended = [Ended("rollout/1", 4, T1), Ended("actor/0", 3, T0)]
    assert decide(plan(driver=False), ended, running=1, fail_fast=True)[:2] == (True, 3)
    assert decide(plan(driver=False), ended, running=1, fail_fast=False)[:2] == (False, None)
    assert decide(plan(driver=False), ended, running=0, fail_fast=False)[:2] == (True, 3)
    assert decide(plan(driver=False), [Ended("actor/0", 0, T0)], running=0).exit_code == 0


def test_stop_order_and_a_stop_on_request():
    assert stop_stages(plan(gate={"role": "actor", "index": 0})) == [["driver/0"], ["rollout/0", "rollout/1"],
                                                                     ["actor/0"]]
    assert exit_code_of(decide(plan(), [], running=4), 15) == ("stopped", 143)
    assert exit_code_of(decide(plan(), [Ended("actor/0", 2, T0)], running=3), 15) == ("failed", 2)


def test_a_process_its_agent_could_not_start_is_named_with_the_cause():
    states = [{"role": "actor", "index": 0, "kind": "worker", "status": "failed", "exit_code": 2, "finished_at": T0,
               "error": "cannot listen on 127.0.0.1:31010: [Errno 98] Address already in use"}]
    decision = decide(plan(), ended_from_states(states), running=3)
    assert decision[:2] == (True, 2)
    assert decision.reason == ("actor/0 could not start (cannot listen on 127.0.0.1:31010: [Errno 98] Address "
                               "already in use), exit code 2")
