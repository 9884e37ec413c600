"""mailsuite: a self-hosted mail server in one Twisted process."""
