"""gVisor's ``runsc``, driven from the host (private: the ``gvisor`` engine's machinery).

- :mod:`.command`: finding ``runsc``, its version, the platform, the global flags, and
  whether it can run here;
- :mod:`.bundle`: the OCI bundle of one sandbox (read-only root, the binds it needs);
- :mod:`.box`: one running sandbox, its template and the host's unix socket its runners
  connect to;
- :mod:`.runners`: the pool's template made of boxes, and the handle on a runner inside.
"""
