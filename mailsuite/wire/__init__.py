"""What every protocol session stands on: the connection's life at the byte level."""
