"""A LoRA adapter built here for a tiny checkpoint, served from a local S3 server.

Ray Serve LLM fetches adapters only from cloud storage (``s3://`` and the
like, with boto3), so the test garden's adapter lives in moto's S3 server on
localhost; the replica reaches it through ``AWS_ENDPOINT_URL_S3``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

__all__ = ["BUCKET", "build_adapter", "s3_env", "s3_server"]

BUCKET = "adapters"


def build_adapter(checkpoint: Path, out: Path, *, rank: int = 8, seed: int = 1234) -> Path:
    """A PEFT LoRA adapter (q_proj and v_proj of every layer) for the Llama at ``checkpoint``.

    Random, non-zero weights: the adapter changes the model's output, which
    is all a test needs of it.
    """
    import torch
    from safetensors.torch import save_file

    config = json.loads((checkpoint / "config.json").read_text())
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    head_dim = config.get("head_dim", hidden // config["num_attention_heads"])
    outputs = {
        "q_proj": config["num_attention_heads"] * head_dim,
        "v_proj": config["num_key_value_heads"] * head_dim,
    }
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(layers):
        for name, width in outputs.items():
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{name}"
            a = torch.randn(rank, hidden, generator=generator) * 0.1
            b = torch.randn(width, rank, generator=generator) * 0.1
            tensors[f"{prefix}.lora_A.weight"] = a.contiguous()
            tensors[f"{prefix}.lora_B.weight"] = b.contiguous()
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(checkpoint),
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": sorted(outputs),
        "fan_in_fan_out": False,
        "inference_mode": True,
    }
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    return out


def s3_env(port: int) -> dict[str, str]:
    """What a process needs to use the local S3 server as AWS S3 (dummy credentials)."""
    endpoint = f"http://127.0.0.1:{port}"
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # No credentials lookup on an instance metadata service that is not there.
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@contextlib.contextmanager
def s3_server(port: int, uploads: dict[str, Path]) -> Iterator[str]:
    """moto's S3 server on ``port`` with each folder of ``uploads`` under its key prefix.

    Yields the endpoint URL; the server stops on exit.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        env = s3_env(port)
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL_S3"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        s3.create_bucket(Bucket=BUCKET)
        for prefix, folder in uploads.items():
            for path in sorted(folder.iterdir()):
                s3.upload_file(str(path), BUCKET, f"{prefix}/{path.name}")
        yield env["AWS_ENDPOINT_URL_S3"]
    finally:
        server.stop()
