"""The durability ceiling: how many messages per second this disk can make durable at all.

``concurrency`` threads each loop, in mode "maildir": write the message into tmp/, fsync it,
rename it into new/, fsync new/ — the classic durable Maildir delivery (two journal commits),
with no protocol around it. Mode "file": create the file in new/, write, fsync, nothing else —
one journal commit, which on ext4 also makes the new directory entry durable; that is what a
Postfix queue file costs before its 250. A server cannot beat the ceiling of its own sequence at
the same concurrency without batching fsyncs (group commit).

Usage: python fsync_ceiling.py DIR TOTAL CONCURRENCY SIZE DEADLINE MODE  (prints a JSON result)
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import sys
import threading
import time


def main() -> None:
    root, total, concurrency, size, deadline, mode = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
        float(sys.argv[5]),
        sys.argv[6],
    )
    two_commits = mode == "maildir"
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    payload = b"x" * (size - 2) + b"\r\n"
    counter = itertools.count()
    done = []
    end = time.monotonic() + deadline

    def worker() -> None:
        new_fd = os.open(os.path.join(root, "new"), os.O_RDONLY | os.O_DIRECTORY)
        count = 0
        try:
            while (n := next(counter)) < total and time.monotonic() < end:
                name = f"{n:07d}.ceiling"
                path = os.path.join(root, "tmp" if two_commits else "new", name)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, payload)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                if two_commits:
                    os.rename(path, os.path.join(root, "new", name))
                    os.fsync(new_fd)
                count += 1
        finally:
            os.close(new_fd)
        done.append(count)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    json.dump(
        {"written": sum(done), "elapsed": elapsed, "cpu": usage.ru_utime + usage.ru_stime},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
