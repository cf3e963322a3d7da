"""Model deployments: one ``ray.serve.llm`` code path for every model."""
