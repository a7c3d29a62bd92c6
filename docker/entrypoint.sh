#!/bin/sh
# SageMaker starts the container as `docker run IMAGE serve`; ECS and Kubernetes may pass any
# warmgate subcommand or nothing. Everything runs as PID 1's exec, so SIGTERM reaches warmgate.
set -e
case "${1:-serve}" in
  serve) [ "$#" -gt 0 ] && shift; exec python3 -m warmgate serve "$@" ;;
  replay|record|simulate|render|fetch-model|export-onnx) exec python3 -m warmgate "$@" ;;
  *) exec "$@" ;;
esac
