"""The sandbox's layers (Linux): namespaces, the private root, privileges, landlock,
seccomp, the scratch tmpfs."""
