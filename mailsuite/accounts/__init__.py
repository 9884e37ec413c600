"""The one user database: domains, users, aliases; passwords; the twisted.cred checker and realm.

Modules: addresses (syntax and canonical forms), passwords (hashing), schema (migrations),
errors, database (IUserDatabase and its SQLite implementation), service (Deferred facade that
runs the database in threads), cred (checker, realm, portal).
"""
