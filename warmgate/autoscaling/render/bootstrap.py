"""The ECS hosts' user data: join the cluster with warm pools on, and complete the launch hook.

EC2 Auto Scaling pauses every launch at the ``autoscaling:EC2_INSTANCE_LAUNCHING`` hook twice
when the group has a warm pool: in ``Warmed:Pending:Wait`` on the way into the pool, and in
``Pending:Wait`` on the way out of it into service (an instance launched straight into service
pauses only there). The instance reads where it is headed from the instance metadata item
``autoscaling/target-lifecycle-state`` and answers with ``CompleteLifecycleAction``:

- headed for the pool (``Warmed:Stopped|Running|Hibernated``): the ECS agent stays
  unregistered (``ECS_WARM_POOLS_CHECK=true``), so ECS places no task here. The script pulls
  the image and runs it once until ``/ping`` answers 200, stops it (SIGTERM, the server's own
  drain) and answers CONTINUE. A standby is therefore parked only after the image, the model
  and the instance's devices proved they load and warm on it; an image that never gets to
  READY within the start-up budget gets ABANDON (the instance is terminated and replaced).
- headed for service (``InService``): ECS decides which tasks run here, so there is no local
  ``/ping`` to wait for: the script answers CONTINUE once the agent has registered the
  instance. Traffic still waits for ``/ping``: the container health check and the target
  group's health check gate every task.

The script runs as a systemd service, not as user data: cloud-init runs user data only on the
first boot, a Stopped standby boots again when it leaves the pool, and a Hibernated one resumes
without booting at all. The service polls the target state and acts once per change, so it
covers all three. ``WARMGATE_IMDS`` and ``WARMGATE_ECS_AGENT`` override the metadata and agent
endpoints (the tests point them at local servers).
"""

from __future__ import annotations

import shlex

from warmgate.autoscaling.render.options import RenderOptions

SCRIPT_PATH = "/usr/local/bin/warmgate-lifecycle"
UNIT_NAME = "warmgate-lifecycle.service"

_LOGIC = r"""
IMDS="${WARMGATE_IMDS:-http://169.254.169.254}"
ECS_AGENT="${WARMGATE_ECS_AGENT:-http://127.0.0.1:51678}"
POLL_S="${WARMGATE_POLL_S:-5}"
PREWARM=warmgate-prewarm

log() { echo "warmgate-lifecycle: $*"; }

imds() {  # IMDSv2: a session token, then the item
  local token
  token=$(curl -sf -X PUT "$IMDS/latest/api/token" \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 300") || return 1
  curl -sf -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/$1"
}

# wait_for SECONDS COMMAND...: COMMAND every 2 s until it succeeds (0) or SECONDS pass (1)
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 2
  done
}

ping_ok() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 4 "http://127.0.0.1:$PORT/ping")" = 200 ]
}

agent_registered() {
  curl -sf "$ECS_AGENT/v1/metadata" | grep -q '"ContainerInstanceArn": *"arn:'
}

ecr_login() {
  local registry="${IMAGE%%/*}"
  case "$registry" in
    *.dkr.ecr.*.amazonaws.com)
      aws ecr get-login-password --region "$REGION" |
        docker login --username AWS --password-stdin "$registry" ;;
  esac
}

prewarm() {  # run the image once until /ping answers 200, then stop it cleanly
  local warmed=0
  ecr_login || return 1
  docker rm -f "$PREWARM" >/dev/null 2>&1
  docker run -d --name "$PREWARM" --network host \
    -e WARMGATE_PORT="$PORT" -e WARMGATE_DRAIN_DELAY=0 "$IMAGE" serve >/dev/null || return 1
  wait_for "$STARTUP_S" ping_ok || warmed=1
  docker stop -t "$STOP_S" "$PREWARM" >/dev/null
  docker rm "$PREWARM" >/dev/null
  return "$warmed"
}

complete() {
  log "$STATE: CompleteLifecycleAction $1"
  aws autoscaling complete-lifecycle-action --region "$REGION" \
    --auto-scaling-group-name "$ASG" --lifecycle-hook-name "$HOOK" \
    --instance-id "$INSTANCE" --lifecycle-action-result "$1" ||
    log "no lifecycle action to complete (already completed, or no hook on this launch)"
}

until INSTANCE=$(imds instance-id) && REGION=$(imds placement/region); do sleep 2; done
handled=""
while true; do
  STATE=$(imds autoscaling/target-lifecycle-state) || STATE=""
  if [ -n "$STATE" ] && [ "$STATE" != "$handled" ]; then
    case "$STATE" in
      Warmed:Stopped | Warmed:Running | Warmed:Hibernated)
        if prewarm; then complete CONTINUE; else complete ABANDON; fi ;;
      InService)
        if wait_for "$STARTUP_S" agent_registered; then complete CONTINUE; else complete ABANDON; fi ;;
    esac
    handled="$STATE"
  fi
  sleep "$POLL_S"
done
"""


def lifecycle_script(options: RenderOptions) -> str:
    """The host's ``warmgate-lifecycle``: bash, curl, docker and the AWS CLI."""
    values = {
        "ASG": options.auto_scaling_group_name,
        "HOOK": lifecycle_hook_name(options),
        "IMAGE": options.image,
        "PORT": str(options.port),
        "STARTUP_S": str(options.startup_s),
        "STOP_S": str(options.termination_grace_s),
    }
    header = "#!/bin/bash\n# warmgate-lifecycle, from `warmgate render ecs`: see the warmgate docs.\nset -u\n"
    assignments = "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())
    return header + assignments + _LOGIC.lstrip("\n")


def lifecycle_hook_name(options: RenderOptions) -> str:
    return f"{options.name}-warm"


def user_data(options: RenderOptions) -> str:
    """The launch template's user data (first boot): ECS agent config, the lifecycle script
    and its systemd unit, enabled so that it also starts on every later boot."""
    unit = (
        "[Unit]\n"
        "Description=warmgate: complete the Auto Scaling launch hook once /ping answers 200\n"
        "Wants=network-online.target docker.service\n"
        "After=network-online.target docker.service\n\n"
        "[Service]\n"
        f"ExecStart={SCRIPT_PATH}\n"
        "Restart=on-failure\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )
    return (
        "#!/bin/bash\n"
        "set -eu\n"
        "cat >> /etc/ecs/ecs.config <<'WARMGATE_EOF'\n"
        f"ECS_CLUSTER={options.name}\n"
        "ECS_WARM_POOLS_CHECK=true\n"
        "WARMGATE_EOF\n"
        "command -v aws >/dev/null || dnf install -y awscli-2\n"
        f"cat > {SCRIPT_PATH} <<'WARMGATE_EOF'\n"
        f"{lifecycle_script(options)}"
        "WARMGATE_EOF\n"
        f"chmod 0755 {SCRIPT_PATH}\n"
        f"cat > /etc/systemd/system/{UNIT_NAME} <<'WARMGATE_EOF'\n"
        f"{unit}"
        "WARMGATE_EOF\n"
        "systemctl daemon-reload\n"
        f"systemctl enable --now --no-block {UNIT_NAME}\n"
    )
