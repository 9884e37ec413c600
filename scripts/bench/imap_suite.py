"""The IMAP/POP3 half of the yardstick: mailsuite against Dovecot on the same generated INBOX.

Called by run.py (``--suite imap`` or ``all``). Generates the folder once (seeded), gives each
server its own copy, then for every round runs each workload against each server in turn (the
order rotates each round), timing it from a plain client in this process (imap_load.py,
pop3_load.py) while sampling the server's CPU and memory from /proc.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imap_load
import mailbox_gen
import pop3_load
import proctree
from mailbox_peers import DovecotPeer, MailboxPeer, MailsuiteMailboxPeer
from peers import PASSWORD, RECIPIENT

WORKLOADS = [
    "imap-select-cold",
    "imap-select-warm",
    "imap-fetch-envelope",
    "imap-fetch-headers",
    "imap-fetch-bodies",
    "imap-search",
    "imap-store",
    "pop3-login-stat",
    "pop3-uidl",
    "pop3-list",
    "pop3-retr",
    "imap-idle",  # last: it leaves mailsuite's heap large until the next cold restart
]
DESCRIPTIONS = {
    "imap-select-cold": "LOGIN+SELECT INBOX, server restarted with its index removed",
    "imap-select-warm": "LOGIN+SELECT INBOX again (index built)",
    "imap-fetch-envelope": "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)",
    "imap-fetch-headers": "UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (From Subject Date)])",
    "imap-fetch-bodies": "FETCH <N spread over the folder> BODY.PEEK[]",
    "imap-search": 'UID SEARCH SUBJECT "<word>"',
    "imap-store": "STORE 1:* +FLAGS (\\Seen) (the unseen ones restored untimed)",
    "pop3-login-stat": "USER/PASS + STAT",
    "pop3-uidl": "UIDL (whole maildrop)",
    "pop3-list": "LIST (whole maildrop)",
    "pop3-retr": "RETR of N messages spread over the maildrop",
    "imap-idle": "fresh LOGIN+SELECT while K sessions idle (IDLE) on INBOX",
}


@dataclass
class Settings:
    messages: int = 10_000
    bodies: int = 500  # messages fetched / retrieved whole
    idle_clients: int = 500
    rounds: int = 3
    seed: int = 1
    timeout: float = 600.0  # bound on any single read


class MemorySampler:
    """Peak PSS of the server's process tree and peak RSS of its largest process."""

    def __init__(self, roots: list[int], interval: float = 0.25) -> None:
        self.roots, self.interval = roots, interval
        self.peak_pss = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        self.peak_pss = max(self.peak_pss, proctree.pss_bytes(self.roots))
        self.peak_rss = max(self.peak_rss, max_rss_bytes(self.roots))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def max_rss_bytes(roots: list[int]) -> int:
    """RSS of the largest process in the tree (mailsuite is one process; Dovecot's per-session
    imap process is what grows with the folder)."""
    largest = 0
    for pid in proctree.tree(roots):
        try:
            with open(f"/proc/{pid}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"VmRSS:"):
                        largest = max(largest, int(line.split()[1]) * 1024)
                        break
        except OSError:
            continue
    return largest


def workload_fn(
    key: str, info: mailbox_gen.MailboxInfo, settings: Settings
) -> Callable[[imap_load.Target], dict]:
    numbers = mailbox_gen.spread(info.count, settings.bodies)
    if key in ("imap-select-cold", "imap-select-warm"):  # measure() restarts for "cold"
        return imap_load.login_select
    if key == "imap-fetch-envelope":
        return imap_load.fetch_envelopes
    if key == "imap-fetch-headers":
        return imap_load.fetch_headers
    if key == "imap-fetch-bodies":
        return lambda target: imap_load.fetch_bodies(target, numbers)
    if key == "imap-search":
        return lambda target: imap_load.search_subject(target, info.search_word)
    if key == "imap-store":
        return imap_load.store_seen
    if key == "imap-idle":
        return lambda target: imap_load.idle_crowd(target, settings.idle_clients)
    raise KeyError(key)


def expected(key: str, info: mailbox_gen.MailboxInfo, settings: Settings) -> dict:
    """What a correct answer contains, to flag a run that did not do the whole work."""
    numbers = mailbox_gen.spread(info.count, settings.bodies)
    if key.startswith("imap-select"):
        return {"exists": info.count}
    if key == "imap-idle":
        return {"exists": info.count, "idling": settings.idle_clients}
    if key in ("imap-fetch-envelope", "imap-fetch-headers"):
        return {"responses": info.count}
    if key == "imap-store":
        # Dovecot answers FETCH only for the messages whose flags changed, mailsuite for all.
        return {"unseen": info.unseen}
    if key == "imap-fetch-bodies":
        return {"responses": len(numbers), "literal_bytes": sum(info.sizes[n - 1] for n in numbers)}
    if key == "imap-search":
        return {"matches": info.search_matches}
    return {}


def measure(
    key: str, peer: MailboxPeer, info: mailbox_gen.MailboxInfo, settings: Settings
) -> list[dict]:
    """One or more records (the POP3 session yields one per phase)."""
    target = imap_load.Target(peer.ports["imap"], RECIPIENT, PASSWORD, True, settings.timeout)
    if key == "pop3" or key.startswith("pop3-"):
        return measure_pop3(peer, info, settings)
    fn = workload_fn(key, info, settings)
    idle_pss: list[int] = []
    if key == "imap-idle":
        fn = _with_idle_sample(settings, peer, idle_pss)
    if key == "imap-select-cold":
        peer.restart(cold=True)  # untimed; its start-up CPU and memory are not the SELECT's
    roots = peer.pids()
    user0, sys0 = proctree.cpu_times(roots)
    with MemorySampler(roots) as memory:
        result = fn(target)
    user1, sys1 = proctree.cpu_times(roots)
    result.update(
        server_cpu=(user1 - user0) + (sys1 - sys0),
        peak_pss_mb=memory.peak_pss / 2**20,
        peak_rss_mb=memory.peak_rss / 2**20,
    )
    if idle_pss:
        result["idle_pss_mb"] = idle_pss[0] / 2**20
    result["expected"] = expected(key, info, settings)
    result["complete"] = all(result.get(k) == v for k, v in result["expected"].items())
    return [result]


def _with_idle_sample(
    settings: Settings, peer: MailboxPeer, out: list[int]
) -> Callable[[imap_load.Target], dict]:
    def run(target: imap_load.Target) -> dict:
        def sample() -> None:
            time.sleep(1.0)  # let the server settle after the logins
            out.append(proctree.pss_bytes(peer.pids()))

        return imap_load.idle_crowd(target, settings.idle_clients, sample)

    return run


def measure_pop3(peer: MailboxPeer, info: mailbox_gen.MailboxInfo, settings: Settings) -> list:
    numbers = mailbox_gen.spread(info.count, settings.bodies)
    roots = peer.pids()
    user0, sys0 = proctree.cpu_times(roots)
    with MemorySampler(roots) as memory:
        result = pop3_load.run_pop3(
            peer.ports["pop3"], RECIPIENT, PASSWORD, numbers, True, settings.timeout
        )
    user1, sys1 = proctree.cpu_times(peer.pids())
    common = {
        "server_cpu": (user1 - user0) + (sys1 - sys0),  # the whole session
        "peak_pss_mb": memory.peak_pss / 2**20,
        "peak_rss_mb": memory.peak_rss / 2**20,
        "client_cpu": result["client_cpu"],
    }
    # The retrieved payload is dot-stuffed: at least the message's own size.
    want_retr = sum(info.sizes[n - 1] for n in numbers)
    records = []
    for phase, key, complete in (
        ("login", "pop3-login-stat", result["messages"] == info.count),
        ("uidl", "pop3-uidl", result["uidl_lines"] == info.count),
        ("list", "pop3-list", result["list_lines"] == info.count),
        ("retr", "pop3-retr", result["retr_bytes"] >= want_retr),
    ):
        record = dict(common, workload=key, elapsed=result["phases"][phase], complete=complete)
        record.update({k: result[k] for k in ("messages", "octets", "retr_bytes")})
        records.append(record)
    return records


def run(
    work: Path,
    cert: Path,
    key: Path,
    settings: Settings,
    workloads: list[str] | None = None,
    peer_names: set[str] | None = None,
) -> dict:
    """Generate, start, measure, stop. Returns {"meta", "peers", "runs", "summary", "targets"}."""
    import report

    from mailsuite.accounts.passwords import hash_password

    wanted = [w for w in WORKLOADS if workloads is None or w in workloads]
    # One POP3 session measures every POP3 phase: "pop3" stands where the first phase was.
    pop3_at = next((i for i, w in enumerate(wanted) if w.startswith("pop3-")), None)
    wanted = [w for w in wanted if not w.startswith("pop3-")]
    if pop3_at is not None:
        wanted.insert(pop3_at, "pop3")
    source = work / "source"
    log(f"generating {settings.messages} messages in {source}")
    started = time.monotonic()
    info = mailbox_gen.generate(source, settings.messages, settings.seed)
    meta = {
        "messages": info.count,
        "mailbox_bytes": info.total_bytes,
        "unseen": info.unseen,
        "search_word": info.search_word,
        "search_matches": info.search_matches,
        "bodies": settings.bodies,
        "idle_clients": settings.idle_clients,
        "rounds": settings.rounds,
        "seed": settings.seed,
        "generated_in": time.monotonic() - started,
        "descriptions": DESCRIPTIONS,
    }
    max_conn = settings.idle_clients + 50
    candidates: list[MailboxPeer] = [
        MailsuiteMailboxPeer(work / "mailsuite", source, cert, key, max_conn),
        DovecotPeer(work / "dovecot", source, cert, key, hash_password(PASSWORD), max_conn),
    ]
    if peer_names:
        candidates = [p for p in candidates if p.name in peer_names]
    started_peers: list[MailboxPeer] = []
    status: dict[str, str] = {}
    runs: list[dict] = []
    try:
        for peer in candidates:
            try:
                peer.start()
            except Exception as exc:  # noqa: BLE001 (reported, the other peer still runs)
                status[peer.name] = f"not measured: failed to start: {exc}"
                log(f"{peer.name}: {status[peer.name]}")
                peer.stop()
                continue
            started_peers.append(peer)
            status[peer.name] = "ok" + (f" ({peer.note})" if peer.note else "")
            log(f"{peer.name} up, ports {peer.ports}")
        for round_no in range(1, settings.rounds + 1):
            for workload in wanted:
                shift = (round_no - 1) % max(1, len(started_peers))
                for peer in started_peers[shift:] + started_peers[:shift]:
                    runs += run_one(workload, peer, info, settings, round_no, status)
        meta["end_pss_mb"] = {p.name: proctree.pss_bytes(p.pids()) / 2**20 for p in started_peers}
    finally:
        for peer in started_peers:
            peer.stop()
    rows = report.summarise_times(runs)
    return {
        "meta": meta,
        "peers": status,
        "runs": runs,
        "summary": rows,
        "targets": report.check_mailbox_targets(rows, settings.messages),
    }


def run_one(
    workload: str,
    peer: MailboxPeer,
    info: mailbox_gen.MailboxInfo,
    settings: Settings,
    round_no: int,
    status: dict[str, str],
) -> list[dict]:
    if not peer.alive():
        status[peer.name] = "died during the run (see its log in the work directory)"
        return []
    tag = f"r{round_no}-{workload}-{peer.name}"
    try:
        records = measure(workload, peer, info, settings)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        log(f"{tag}: failed: {exc}")
        return []
    for record in records:
        record.setdefault("workload", workload)
        record.update(peer=peer.name, round=round_no)
        extra = ""
        if "idle_pss_mb" in record:
            extra = f", {record['idling']} idling, PSS {record['idle_pss_mb']:.1f} MB"
        log(
            f"r{round_no}-{record['workload']}-{peer.name}: {1000 * record['elapsed']:.1f} ms,"
            f" server CPU {record['server_cpu']:.2f} s, peak PSS {record['peak_pss_mb']:.1f} MB"
            f"{extra}" + ("" if record["complete"] else f", INCOMPLETE: {_brief(record)}")
        )
    return records


def _brief(record: dict) -> str:
    keys = ("responses", "literal_bytes", "matches", "exists", "messages", "retr_bytes", "idling")
    got = {k: record[k] for k in keys if k in record}
    return f"got {got}, expected {record.get('expected', {})}"


def log(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)
