#!/usr/bin/env bash
# Creates a venv with upstream AReaL 1.0.4 for the real-AReaL tests: `tests/areal/setup.sh VENV_DIR`.
# Its standard output is the python's path and nothing else (.ci/run captures it): every check below writes to
# standard error, since importing areal logs to standard output.
# Runs on CPU: areal is installed with --no-deps and only what its controller, RPC server, trainers, FSDP
# engine and data service import (requirements.txt beside this file), so upstream's pins never pull another
# torch. Idempotent; prints the python.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 VENV_DIR   (a venv of its own, never the project's)" >&2
    exit 2
fi
venv=$1
here=$(cd "$(dirname "$0")" && pwd)
start=$SECONDS
if [ ! -x "$venv/bin/python" ]; then
    python3.11 -m venv "$venv"
fi
# torch comes from PyPI, the only index these machines reach: its Linux wheel is the CUDA build and imports only
# with the CUDA libraries it names beside it (about 4.6 GB in all), but it runs on CPU. uv installs it in about
# 25 s (pip takes minutes) and keeps it while resolving the rest: every requirement that names torch accepts 2.13.0.
# (Until 2026-12 a CPU build lay on these machines' disk; it is gone, measured 2026-12-07.)
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv
uv=("$venv/bin/uv" pip install --quiet --python "$venv/bin/python")
"${uv[@]}" torch==2.13.0
"${uv[@]}" -r "$here/requirements.txt"
"${uv[@]}" --no-deps areal==1.0.4
"$venv/bin/python" -c "import areal.api.scheduler_api, areal.infra.scheduler.local, areal.infra.rpc.rpc_server, \
areal.api.alloc_mode, areal.infra.staleness_manager, areal.infra.controller.train_controller, \
areal.trainer.rl_trainer, areal.trainer.sft_trainer, areal.trainer.rw_trainer, areal.trainer.dpo_trainer, \
areal.engine.fsdp_engine, areal.trainer.sft.lm_engine, areal.infra.data_service.worker.app" >&2
"$venv/bin/python" -m areal.infra.rpc.rpc_server --help >/dev/null
echo "areal 1.0.4 ready in $venv ($((SECONDS - start)) s, $(du -sh "$venv" | cut -f1)): $venv/bin/python" >&2
echo "$venv/bin/python"
