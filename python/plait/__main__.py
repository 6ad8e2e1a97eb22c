"""``python -m plait``: see :mod:`plait.cli`."""

from .cli import main

raise SystemExit(main())
