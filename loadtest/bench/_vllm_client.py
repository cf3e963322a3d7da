"""The overhead benchmark driven by vLLM's own benchmark client (``--client vllm``).

vLLM's ``vllm.benchmarks.serve`` (what ``vllm bench serve`` runs) times each
setup, so the figures do not depend on a client we wrote. It runs in a child
process (``python -m loadtest.bench._vllm_client SPEC OUT``): it imports
vLLM, which the ``garden`` CLI never does, once for every round.

Each round is one ``vllm bench serve`` run against one setup: ``num_prompts``
random prompts of ``input_len`` tokens, ``output_len`` tokens out
(``--ignore-eos``), ``concurrency`` at once, streamed chat completions. The
rounds alternate between the setups in the caller's orders (a Williams
design), after one warm-up round each; a round's seed is its index, so
every setup sees the same prompts in the same round. Figures pool the raw
per-request times of every round (TTFT, and the inter-token latencies: the
gap between consecutive streamed chunks as vLLM's client measures it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cluster.exceptions import ClusterError
from loadtest.bench._streams import latency_figures

__all__ = ["VllmRounds", "client_parser", "run_vllm_rounds", "summarize_vllm"]

#: What one round keeps of vLLM's result (its raw per-request lists, seconds).
_KEPT = ("duration", "completed", "failed", "ttfts", "itls", "latencies", "output_throughput")


@dataclass(frozen=True, slots=True)
class VllmRounds:
    """The child's settings: the setups and how vLLM's client drives them."""

    #: ``(name, base_url, model, api_key)`` of each setup; ``base_url`` ends in ``/v1``.
    targets: list[tuple[str, str, str, str]]
    #: The model's checkpoint directory: vLLM's client counts and samples tokens with it.
    tokenizer: str
    #: Each round's order of target indices (after one warm-up round per target).
    orders: list[list[int]]
    rounds: int
    num_prompts: int = 64
    input_len: int = 128
    output_len: int = 32
    concurrency: int = 16


def _argv(target: Sequence[str], spec: VllmRounds, seed: int) -> list[str]:
    name, base_url, model, api_key = target
    url = urlsplit(base_url)
    argv = [
        "--backend", "openai-chat",
        "--base-url", f"{url.scheme}://{url.netloc}",
        "--endpoint", f"{url.path.rstrip('/')}/chat/completions",
        "--model", model,
        "--tokenizer", spec.tokenizer,
        "--dataset-name", "random",
        "--random-input-len", str(spec.input_len),
        "--random-output-len", str(spec.output_len),
        "--num-prompts", str(spec.num_prompts),
        "--max-concurrency", str(spec.concurrency),
        "--ignore-eos",
        "--seed", str(seed),
        "--label", name,
        "--save-detailed",
        "--disable-tqdm",
        "--percentile-metrics", "ttft,itl,e2el",
    ]  # fmt: skip
    if api_key:
        argv += ["--header", f"Authorization=Bearer {api_key}"]
    return argv


def client_parser() -> argparse.ArgumentParser:
    """vLLM's benchmark client's own argument parser (``vllm bench serve``'s arguments)."""
    from vllm.benchmarks.serve import add_cli_args

    parser = argparse.ArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)  # type: ignore[arg-type]  # annotated as vLLM's argparse subclass
    return parser


def _child(spec_path: str, out_path: str) -> None:
    """Run every round with vLLM's client; write ``{name: [round, ...]}`` to ``out_path``."""
    spec = VllmRounds(**json.loads(Path(spec_path).read_text()))
    parser = client_parser()
    seen: dict[str, list[dict[str, Any]]] = {t[0]: [] for t in spec.targets}

    def one(i: int, seed: int) -> dict[str, Any]:
        args = parser.parse_args(_argv(spec.targets[i], spec, seed))
        # vLLM's client prints its report; the log keeps it, stdout stays ours.
        from vllm.benchmarks.serve import main

        with contextlib.redirect_stdout(io.StringIO()) as printed:
            result = main(args)
        sys.stderr.write(printed.getvalue())
        return {key: result.get(key) for key in _KEPT}

    for i in range(len(spec.targets)):  # warm-up, not counted
        print(f"warm-up: {spec.targets[i][0]}", flush=True)
        one(i, seed=10_000)
    for r in range(spec.rounds):
        for i in spec.orders[r % len(spec.orders)]:
            print(f"round {r + 1}/{spec.rounds}: {spec.targets[i][0]}", flush=True)
            seen[spec.targets[i][0]].append(one(i, seed=r))
    Path(out_path).write_text(json.dumps(seen))


def run_vllm_rounds(
    spec: VllmRounds, work_dir: Path, progress: Callable[[str], None]
) -> dict[str, list[dict[str, Any]]]:
    """Run :func:`_child` in a fresh interpreter; each line it prints goes to ``progress``.

    Raises :class:`~cluster.exceptions.ClusterError` naming the log when vLLM's
    client fails.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    spec_path, out_path = work_dir / "vllm-client.json", work_dir / "vllm-client-out.json"
    log = work_dir / "vllm-client.log"
    spec_path.write_text(json.dumps(asdict(spec)))
    out_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "loadtest.bench._vllm_client", str(spec_path), str(out_path)]
    with (
        log.open("w") as err,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True) as child,
    ):
        assert child.stdout is not None
        for line in child.stdout:
            progress(line.strip())
    if child.returncode != 0 or not out_path.exists():
        raise ClusterError(f"vLLM's benchmark client failed (exit {child.returncode}); see {log}")
    return dict(json.loads(out_path.read_text()))


def summarize_vllm(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One setup's figures over its rounds (ms, requests/s, output tokens/s).

    TTFT and inter-token latency pool every request of every round (vLLM's
    client records a failed request with no times, so it drops out);
    throughput is completed requests over the rounds' summed duration.
    """
    completed = sum(int(r["completed"]) for r in rounds)
    failed = sum(int(r["failed"]) for r in rounds)
    ttft = [t * 1000 for r in rounds for t in r["ttfts"] if t]
    e2e = [t * 1000 for r in rounds for t in r["latencies"] if t]
    itl = [gap * 1000 for r in rounds for gaps in r["itls"] for gap in gaps]
    duration = sum(float(r["duration"]) for r in rounds)
    if not ttft or not itl or not duration:
        return {"requests": completed + failed, "failures": completed + failed}
    return {
        "requests": completed + failed,
        "failures": failed,
        **latency_figures(ttft, itl, e2e),
        "throughput_rps": round(completed / duration, 3),
        "output_tokens_per_s": round(
            sum(float(r["output_throughput"]) * float(r["duration"]) for r in rounds) / duration,
            1,
        ),
    }


if __name__ == "__main__":
    _child(*sys.argv[1:3])
