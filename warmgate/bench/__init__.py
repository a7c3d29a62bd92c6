"""``warmgate bench``: served throughput against raw ONNX Runtime, latency at fixed loads,
``/ping`` under saturation, memory, and time to READY against one pass over the bucket plan,
all measured on one machine in one run (DESIGN §8: ratios, never lone absolute times)."""
