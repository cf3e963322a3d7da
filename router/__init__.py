"""The router: the OpenAI-compatible ingress of the garden."""
