"""``garden bench overhead --client vllm``: vLLM's own client still takes our command line.

Fails loudly when a vLLM upgrade renames the benchmark client's arguments
or its entry points (``loadtest.bench._vllm_client``).
"""

from __future__ import annotations

import pytest

from loadtest.bench._vllm_client import VllmRounds, _argv, client_parser

pytestmark = pytest.mark.integration


def test_vllms_client_parses_the_benchmarks_command_line() -> None:
    from vllm.benchmarks import serve

    target = ("garden_explicit", "http://127.0.0.1:8000/v1", "code", "sk-1")
    spec = VllmRounds(targets=[target], tokenizer="/models/code", orders=[[0]], rounds=1)
    args = client_parser().parse_args(_argv(target, spec, seed=4))
    assert (args.backend, args.base_url, args.endpoint) == (
        "openai-chat",
        "http://127.0.0.1:8000",
        "/v1/chat/completions",
    )
    assert (args.model, args.tokenizer, args.dataset_name) == ("code", "/models/code", "random")
    assert (args.random_input_len, args.random_output_len) == (128, 32)
    assert (args.num_prompts, args.max_concurrency, args.seed) == (64, 16, 4)
    assert args.ignore_eos and args.save_detailed and args.disable_tqdm
    assert args.header == ["Authorization=Bearer sk-1"]
    assert callable(serve.main)
