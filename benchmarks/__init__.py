"""The benchmarks users rerun, each a module run from the repository root:

    python -m benchmarks.<name> --help

Each writes its report, with the machine it ran on (`benchmarks.machine`): the bundled model's and the
framework's under `benchmarks/results/`, those of training phases and candidates under `experiments/results/`.
"""
