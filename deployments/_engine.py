"""The vLLM engine of a garden replica: Ray Serve LLM's, lighter on the CPU.

On the CPU, Ray Serve LLM and vLLM start three processes per model: the Serve
replica, a spawned ``VLLM::EngineCore`` and a spawned ``VLLM::Worker``, and
each spawned one imports torch and vLLM from scratch (about 0.7 GB and 15 s
of a core each on a 2-core machine). A single-worker CPU engine needs neither
extra import:

* vLLM's CPU platform forces the multiprocess executor only to set OpenMP up
  per worker; the garden sets ``OMP_NUM_THREADS`` and
  ``VLLM_CPU_OMP_THREADS_BIND`` itself (each model's ``env``), so the worker
  runs inside the EngineCore with vLLM's own ``uni`` executor.
* vLLM forces ``spawn`` inside Ray actors only so that a spawned child learns
  the Ray address; a ``uni`` engine never talks to Ray, so the EngineCore is
  forked from the replica, which has already imported everything it needs
  (and shares those pages copy-on-write).

GPU and multi-worker engines keep Ray Serve LLM's behaviour unchanged.

An engine must never outlive its replica: vLLM's EngineCore ignores SIGTERM
and would spin a core with its memory held. Every child forked from a replica
therefore asks the kernel for SIGKILL when the replica dies
(``PR_SET_PDEATHSIG``), so an engine goes with its replica even when Ray kills
the replica abruptly.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from contextlib import AbstractContextManager
from typing import Any

from deployments._internals import HookedEngine, fork_allowed
from deployments._limits import install_strict_max_tokens
from deployments._probe import LoadProbe, attach_probe

__all__ = ["GardenEngine"]

install_strict_max_tokens()

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In a freshly forked child: get SIGKILL when the thread that forked it exits.

    That thread is the replica's long-lived user-code event loop (where
    ``AsyncLLM`` starts its EngineCore), so in practice: when the replica dies.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")


if sys.platform == "linux":
    os.register_at_fork(after_in_child=_die_with_parent)


class GardenEngine(HookedEngine):
    """Ray Serve LLM's engine, running a single-worker CPU engine in one forked process."""

    _light: bool = False
    probe: LoadProbe | None = None

    def configured(self, vllm_config: Any) -> None:
        parallel = vllm_config.parallel_config
        if vllm_config.device_config.device_type == "cpu" and parallel.world_size == 1:
            parallel.distributed_executor_backend = "uni"
            self._light = True

    def starting(self) -> AbstractContextManager[Any]:
        return fork_allowed() if self._light else contextlib.nullcontext()

    def started(self, client: Any) -> None:
        self.probe = attach_probe(client)
