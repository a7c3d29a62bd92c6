"""Configuration for the real engines: SageMaker, ECS and Kubernetes (see :func:`render`)."""

from __future__ import annotations

from warmgate.autoscaling.render.options import Engine, RenderOptions, render

__all__ = ["Engine", "RenderOptions", "render"]
