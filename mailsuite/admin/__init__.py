"""mailsuite-admin: the command line that edits a data directory (never a running server).

cli.py builds the parser from one module per command group (domains, users, aliases), each
exposing ``register(groups)``; a new group (e.g. the queue) is one more module in cli.GROUPS.
"""
