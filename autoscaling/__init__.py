"""Per-model autoscaling policies (filled in by the autoscaling work)."""
