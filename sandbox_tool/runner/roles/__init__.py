"""The runner's processes: the supervisor, the worker, the warm template, and the worker's
framed channel (cells)."""
