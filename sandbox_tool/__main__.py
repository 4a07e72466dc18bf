"""``python -m sandbox_tool``: the same as the ``sandbox-tool`` command."""

import sys

from sandbox_tool.cli import main

sys.exit(main())
