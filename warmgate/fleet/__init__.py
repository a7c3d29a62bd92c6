"""The local fleet: real ``warmgate serve`` processes behind HAProxy, steered by the pure policy.

One idea per module:

- :mod:`.haproxy_config` renders HAProxy's configuration (a pure function);
- :mod:`.runtime_api` speaks HAProxy's runtime API over its UNIX stats socket;
- :mod:`.haproxy` runs the HAProxy process;
- :mod:`.slots` hands out the backend's pre-declared ``server`` lines;
- :mod:`.replica` runs one replica process; :mod:`.probe` observes it over HTTP;
- :mod:`.fleet` is the actuator (start, claim, drain, remove) and the observer;
- :mod:`.control` is the loop: observe, ``decide``, keep the warm pool's books, apply;
- :mod:`.cli` registers ``warmgate fleet``.

Nothing here imports :mod:`warmgate.server` or :mod:`warmgate.models`: replicas are processes,
and the fleet talks to them over HTTP only (DESIGN §1, §6).
"""
