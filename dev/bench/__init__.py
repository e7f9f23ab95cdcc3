"""The `make bench` benchmarks (python -m dev.bench): one module per section."""

class BenchError(Exception):
    """A benchmark cannot run as asked; `make bench` prints the message, not a traceback."""
