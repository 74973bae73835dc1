"""`python -m helpers <command>`: see helpers/apps/cli.py."""
from .apps.cli import main

raise SystemExit(main())
