"""Autoscaling companion: a pure scaling policy, a warm pool, a simulator and engine configs.

See ``docs/autoscaling.md``. Importing this package imports nothing else.
"""
