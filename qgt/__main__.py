"""``python -m qgt`` is the ``qgt`` command."""

from qgt.cli import main

raise SystemExit(main())
