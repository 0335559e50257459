"""Environment a Kubernetes pod gives the agent: secrets already in the environment (secretKeyRef) named in
AREAL_SECRETS_IN_ENV are not read from their files; AREAL_AGENT_HOST is the agent's own address (the driver's pod)."""
from __future__ import annotations

from agent_helpers import PY, agent_env, make_plan, start_agent, worker

SHOW = "import os; print(os.environ.get('HF_TOKEN'), os.environ['AREAL_AGENT_URL'])"


def test_secret_given_by_the_target_is_not_read_from_its_file(tmp_path):
    plan = make_plan(tmp_path / "plan.json", [worker("a", 0, [PY, "-c", SHOW])],
                     secrets={"HF_TOKEN": str(tmp_path / "missing")})
    env = agent_env(HF_TOKEN="from-secret-key-ref", AREAL_SECRETS_IN_ENV="HF_TOKEN",
                    AREAL_AGENT_HOST="127.0.0.1")
    proc = start_agent(plan, "a/0", tmp_path / "run", env=env)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.split()[0] == "from-secret-key-ref" and out.split()[1].startswith("http://127.0.0.1:")


def test_secret_not_named_is_still_read_from_its_file(tmp_path):
    plan = make_plan(tmp_path / "plan.json", [worker("a", 0, [PY, "-c", SHOW])],
                     secrets={"HF_TOKEN": str(tmp_path / "missing")})
    proc = start_agent(plan, "a/0", tmp_path / "run", env=agent_env(HF_TOKEN="ambient"))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "cannot read secret HF_TOKEN" in err


def test_agent_host_is_the_advertised_address(tmp_path):
    plan = make_plan(tmp_path / "plan.json", [worker("a", 0, [PY, "-c", SHOW])])
    proc = start_agent(plan, "a/0", tmp_path / "run", env=agent_env(AREAL_AGENT_HOST="localhost"))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.split()[1].startswith("http://localhost:")
