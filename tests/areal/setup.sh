#!/usr/bin/env bash
# Creates a venv with upstream AReaL 1.0.4 for the real-AReaL tests: `tests/areal/setup.sh VENV_DIR`.
# CPU only: areal is installed with --no-deps and only what its controller, RPC server and trainers import
# (requirements.txt beside this file), so pip never pulls upstream's CUDA pins. Idempotent; prints the python.
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
# pip takes torch from the CPU build on this machine's disk (uv does not look there); uv resolves the rest fast
# and keeps that torch, since every requirement that names torch accepts 2.13.0.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check torch==2.13.0 uv
uv=("$venv/bin/uv" pip install --quiet --python "$venv/bin/python")
"${uv[@]}" -r "$here/requirements.txt"
"${uv[@]}" --no-deps areal==1.0.4
"$venv/bin/python" -c "import areal.api.scheduler_api, areal.infra.scheduler.local, areal.infra.rpc.rpc_server, \
areal.api.alloc_mode, areal.infra.staleness_manager, areal.infra.controller.train_controller, \
areal.trainer.rl_trainer, areal.trainer.sft_trainer, areal.trainer.rw_trainer, areal.trainer.dpo_trainer"
"$venv/bin/python" -m areal.infra.rpc.rpc_server --help >/dev/null
echo "areal 1.0.4 ready in $venv ($((SECONDS - start)) s, $(du -sh "$venv" | cut -f1)): $venv/bin/python" >&2
echo "$venv/bin/python"
