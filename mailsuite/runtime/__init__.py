"""How the process runs: TLS certificates and options, and handing the data directory to the
user twistd switches to."""
