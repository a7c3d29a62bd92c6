"""The local fleet: real ``warmgate serve`` processes behind HAProxy, steered by the pure policy.

The only part of scaling with I/O; :mod:`warmgate.autoscaling` stays pure and offline.

One idea per module:

- :mod:`.haproxy_config` renders HAProxy's configuration (a pure function);
- :mod:`.runtime_api` speaks HAProxy's runtime API over its UNIX stats socket;
- :mod:`.haproxy` runs the HAProxy process;
- :mod:`.slots` hands out the backend's pre-declared ``server`` lines;
- :mod:`.replica` runs one replica process; :mod:`.probe` observes it over HTTP;
- :mod:`.fleet` runs the processes and HAProxy (start, promote, drain, remove) and observes them;
- :mod:`.actuator` is the fleet as an :class:`~warmgate.autoscaling.actuation.Actuator`;
- :mod:`.control` is the loop: observe, ``decide``, sync the pool, the shared ``actuate``;
- :mod:`.metrics` is the fleet's and pool's Prometheus metrics;
- :mod:`.loadgen` and :mod:`.replay` replay a trace against the fleet and the simulator;
- :mod:`.cli` registers ``warmgate fleet``.

Nothing here imports :mod:`warmgate.server` or :mod:`warmgate.models`: replicas are processes,
and the fleet talks to them over HTTP only (DESIGN §1, §6).
"""
