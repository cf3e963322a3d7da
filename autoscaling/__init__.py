"""Per-model autoscaling: LLM load in, replicas out, within bounds, delays and budget.

:class:`~autoscaling.policy.GardenPolicy` is what Ray Serve calls (by import
path, from each model's ``autoscaling_config``); the rule and its wrappers
are pure functions tested without a cluster.
"""
