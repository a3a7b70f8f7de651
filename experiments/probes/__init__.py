"""Research probes: scripts that answered one question in the model's history, each a module run
from the repository root (`python -m experiments.probes.<name> --help`); results in experiments/results/."""
