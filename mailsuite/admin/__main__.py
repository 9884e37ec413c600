"""Allow ``python -m mailsuite.admin`` (same as the mailsuite-admin script)."""

from mailsuite.admin.cli import main

raise SystemExit(main())
