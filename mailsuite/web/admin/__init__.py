"""The small built-in admin page (``/admin``): the queue, the delivery report and, in sandbox
mode, the captured messages, for users flagged admin. Server-rendered HTML, no JavaScript, a
strict Content-Security-Policy, and captured HTML shown only sanitised inside a sandboxed frame."""
