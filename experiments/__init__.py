"""The bundled model's history: phase configs, research probes and their results (experiments/README.md)."""
