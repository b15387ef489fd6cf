"""``python -m wsio``: the ``wsio`` command."""

from .cli import main

raise SystemExit(main())
