"""What the microsandbox engine needs besides its isolation strategy (private).

host.py      can this host boot a microVM (KVM, CPU flags, the runtime, the image)
bootlog.py   why a microVM did not boot, from its own logs
sdk.py       the adapter to the microsandbox SDK: settings in, errors out
machines.py  the engine's running VMs, booted once per settings and shared
relay.py     the host's end of one runner in a VM (a process per execution)

The guest's end is the runner's own role, ``sandbox_tool/runner/roles/guest.py``,
and the streams between both are ``sandbox_tool/runner/mux.py``.
"""
