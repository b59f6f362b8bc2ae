"""The bundled program's entry point: the `studio` command (no sub-command: the window)."""

from studio.cli import main

raise SystemExit(main())
