"""POP3 server (RFC 1939, 2449, 2595, 3206, 5034) over the user's INBOX Maildir."""
