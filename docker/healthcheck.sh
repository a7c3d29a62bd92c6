#!/bin/bash
# Container health check without python or curl: exit 0 only when GET /ping answers 200 (READY).
# 503 while loading, warming, draining or FAILED; a closed port or a 4 s silence is unhealthy too.
port="${1:-${SAGEMAKER_BIND_TO_PORT:-8080}}"
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /ping HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r -t 4 status <&3 || exit 1
case "$status" in
  "HTTP/1."?" 200 "*) exit 0 ;;
  *) exit 1 ;;
esac
