"""warmgate: an inference-serving runtime whose readiness means steady-state speed."""

__version__ = "0.1.0"
