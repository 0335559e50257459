"""The local launch plan's format (launch.json) as pydantic models: the source of schemas/local-plan.schema.json and
the check `areal run` makes when it reads a compiled folder (runs/local.py).

targets/local.py writes launch.json as plain data with these fields (building the models cost a cold compile more
than writing the file); the golden files and the test that validates every example's launch.json against the
committed schema keep the two in step."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Process(BaseModel):
    """One agent process wrapping one worker. `{target_dir}` and `{run_dir}` are filled in by `areal run`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str  # role/index
    role: str
    index: int
    devices: list[int]
    argv: list[str]
    env: dict[str, str]
    log: str
    forks: list[str]  # role/index of the colocated workers this agent forks at start-up


class LaunchPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    launch_version: int
    run_id: str
    run_name: str  # experiment/trial
    fail_fast: bool
    heartbeat_interval: float
    processes: list[Process]
