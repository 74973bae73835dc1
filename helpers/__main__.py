"""`python -m helpers <command>`: see helpers/cli.py."""
from .cli import main

raise SystemExit(main())
