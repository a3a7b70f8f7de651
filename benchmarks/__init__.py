"""The benchmarks users rerun, each a module run from the repository root:

    python -m benchmarks.<name> --help

Each writes its report, with the machine it ran on, under `benchmarks/results/` (`benchmarks.machine`).
"""
