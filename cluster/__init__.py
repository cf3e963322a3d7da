"""Model Garden's control plane: config, the Serve application, the CLI."""
