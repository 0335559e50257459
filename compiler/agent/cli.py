"""The agent's command line: `supervise`, `fork`, `node` and `status` (argparse; exit 2 = unusable set-up).

Called by __main__.py, i.e. `python3 -I agent.pyz ...` or `python -m areal_compiler.agent ...`."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

from .plan import PlanError, load_plan
from .state import iso, read_run

# Each verb imports what it runs when it runs (`supervise` starts by the hundred at once: the modules of the other
# verbs, and the thread pool `fork` needs, would be compiled and imported by every one of them).


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent.pyz", description="areal runtime agent")
    commands = parser.add_subparsers(dest="verb", required=True)
    sup = commands.add_parser("supervise", help="run one planned worker until it ends")
    sup.add_argument("--plan", required=True)
    sup.add_argument("--worker", required=True, help="ROLE/INDEX")
    sup.add_argument("--run-dir", required=True)
    sup.add_argument("--log", help="append the worker's stdout and stderr to this file")
    fork = commands.add_parser("fork", help="fork ROLE beside every worker of TARGET (all or nothing)")
    fork.add_argument("--plan", required=True)
    fork.add_argument("--role", required=True)
    fork.add_argument("--target", required=True)
    fork.add_argument("--command", help="argv string (split like a shell would, never run by one)")
    fork.add_argument("--run-dir", required=True, help="the result is recorded in DIR/forks/ROLE.json")
    fork.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each child (60)")
    end = commands.add_parser("conclude", help="end a Slurm batch job: wait for its steps, stop them in order, "
                                               "exit with the job's code")
    end.add_argument("--plan", required=True)
    end.add_argument("--run-dir", required=True)
    end.add_argument("--job-id", required=True)
    end.add_argument("--step", action="append", default=[], metavar="ROLE=PID", help="a role's srun step")
    node = commands.add_parser("node", help="run every planned worker of one logical node (a Kubernetes pod)")
    node.add_argument("--plan", required=True)
    node.add_argument("--nodes", required=True, help="the logical nodes of this pod's group, in pod-index order")
    node.add_argument("--index-env", required=True, help="environment variable holding this pod's index")
    node.add_argument("--run-dir", required=True)
    status = commands.add_parser("status", help="derived health of every worker of a run")
    status.add_argument("--run-dir", required=True)
    status.add_argument("--json", action="store_true", help='one envelope {"v": 1, "ts", "data"}')
    return parser


def _fork(args: argparse.Namespace) -> int:
    from .client import token_from_env
    from .forks import ForkError, fork_workers

    try:
        token = token_from_env()
    except OSError as exc:
        raise PlanError("cannot read AREAL_AGENT_TOKEN_FILE: %s" % exc) from None
    if not token:
        raise PlanError("no agent token: set AREAL_AGENT_TOKEN_FILE or AREAL_AGENT_TOKEN")
    try:
        forked = fork_workers(load_plan(args.plan), args.role, args.target, token, command=args.command,
                              run_dir=args.run_dir, timeout=args.timeout)
    except ForkError as exc:
        sys.stderr.write("areal-agent: error: %s\n" % exc)
        return 1
    for item in forked:
        print("forked %s/%d on %s pid %d ports %s" % (item["role"], item["worker_index"], item["host"],
                                                      item["pid"], item["ports"]))
    return 0


def _conclude(args: argparse.Namespace) -> int:
    from .conclude import conclude

    steps = {}
    for item in args.step:
        role, _, pid = item.partition("=")
        if not role or not pid.isdigit():
            raise PlanError("--step must look like ROLE=PID, got %r" % item)
        steps[role] = int(pid)
    return conclude(load_plan(args.plan), args.run_dir, steps, args.job_id)


def _status_table(rows: List[Dict[str, Any]]) -> str:
    lines = ["%-24s %-7s %-10s %-5s %-14s %s" % ("WORKER", "KIND", "STATUS", "EXIT", "PID agent/child", "NOTE")]
    for row in rows:
        pid = row.get("pid") or {}
        pids = "%s/%s" % (pid.get("agent", "-"), pid.get("child", "-")) if isinstance(pid, dict) else "-"
        exit_code = row.get("exit_code")
        lines.append("%-24s %-7s %-10s %-5s %-14s %s" % (
            "%s/%s" % (row.get("role"), row.get("index")), row.get("kind") or "-", row["status"],
            "-" if exit_code is None else exit_code, pids, row.get("message", "")))
    return "\n".join(lines)


def _status(args: argparse.Namespace) -> int:
    now = time.time()
    try:
        rows = read_run(args.run_dir, now)
    except OSError as exc:
        message = "no run state under %s: %s" % (args.run_dir, exc)
        if args.json:
            print(json.dumps({"v": 1, "ts": iso(now), "error": {"code": "AGENT_NO_RUN", "kind": "not_found",
                                                                "message": message, "retryable": False}}))
        else:
            sys.stderr.write("areal-agent: error: %s\n" % message)
        return 1
    if args.json:
        print(json.dumps({"v": 1, "ts": iso(now), "data": {"run_dir": os.path.abspath(args.run_dir),
                                                           "workers": rows}}, sort_keys=True))
    else:
        print(_status_table(rows))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.verb == "supervise":
            from .supervisor import supervise

            return supervise(args.plan, args.worker, args.run_dir, args.log, own_process=True)
        if args.verb == "fork":
            return _fork(args)
        if args.verb == "conclude":
            return _conclude(args)
        if args.verb == "node":
            from .node import Node, choose_node

            return Node(args.plan, choose_node(args.nodes, args.index_env, dict(os.environ)), args.run_dir).run()
        return _status(args)
    except PlanError as exc:
        sys.stderr.write("areal-agent: error: %s\n" % exc)
        return 2
