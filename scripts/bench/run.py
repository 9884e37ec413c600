"""The performance yardstick. SMTP: mailsuite against Postfix, aiosmtpd, Twisted's ``twistd mail``
and ceilings (smtp-sink, raw fsync loops); IMAP/POP3: mailsuite against Dovecot on a generated
10,000-message INBOX (imap_suite.py). Interleaved in one invocation.

    python scripts/bench/run.py [--suite smtp|imap|all] [--quick] [--json out.json] [--rounds N]

Installs what it needs (Postfix and Dovecot with apt-get, aiosmtpd and py-spy in a
private venv), starts every server on 127.0.0.1 high ports under a temporary work directory,
runs each workload against each server in turn (A B C A B C ...) for several rounds, prints
a table of medians and writes the runs as JSON. Servers are stopped by PID at the end;
delivered Maildirs are moved aside between runs and deleted only at the very end (the disk is
mounted with ``discard``, so deleting thousands of files slows the I/O that follows).
Run it with the project's venv Python (mailsuite must be importable and twistd beside it).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import deps
import imap_suite
import peers
import proctree
import pyspy_profile
import report
from loadgen import LoadSpec

HERE = Path(__file__).resolve().parent
TOKEN_RE = re.compile(rb"X-Bench-Token: (\S+)")
MX_SENDER = "sender@remote.example"


@dataclass(frozen=True)
class Workload:
    kind: str  # "mx" or "submission"
    size: int
    concurrency: int

    @property
    def key(self) -> str:
        prefix = "mx" if self.kind == "mx" else "sub"
        return f"{prefix}-{self.size // 1024}k-c{self.concurrency}"


WORKLOADS = [
    Workload("mx", 1024, 1),
    Workload("mx", 1024, 8),
    Workload("mx", 1024, 32),
    Workload("mx", 65536, 1),
    Workload("mx", 65536, 8),
    Workload("mx", 65536, 32),
    Workload("submission", 1024, 8),
    Workload("submission", 65536, 8),
]


class FsyncCeiling:
    """Not a server: fsync_ceiling.py run at the workload's concurrency, on the same disk."""

    durable = True
    NOTES = {
        "maildir": "write+fsync+rename+fsync(dir) loop, no protocol: durability ceiling",
        "file": "create+write+fsync loop (one journal commit, like a Postfix queue file)",
    }

    def __init__(self, work: Path, mode: str) -> None:
        self.mode = mode
        self.name = "fsync-ceiling" if mode == "maildir" else "fsync1-ceiling"
        self.note = self.NOTES[mode]
        self.maildir = work / self.name

    def supports(self, workload: Workload) -> bool:
        return workload.kind == "mx"


def set_child_subreaper() -> None:
    """Orphans of our servers (Postfix children outliving their master) become ours to reap."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap_orphans(timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.1)


def make_certificate(work: Path) -> tuple[Path, Path]:
    """One RSA 2048 leaf certificate for every TLS peer, so handshakes cost the same."""
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30"]
        + ["-subj", f"/CN=mail.{peers.DOMAIN}", "-addext", "basicConstraints=critical,CA:FALSE"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    key.chmod(0o644)  # read by Postfix's unprivileged smtpd as well
    return cert, key


class Trash:
    """Delivered mail moved aside by rename (cheap), deleted once at the end (expensive)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def move_aside(self, directory: Path) -> None:
        """Rename ``directory`` into the trash and recreate it empty, same owner and mode."""
        if not directory.is_dir():
            return
        st = directory.stat()
        self.count += 1
        os.rename(directory, self.root / f"{self.count:05d}")
        directory.mkdir(mode=st.st_mode & 0o7777)
        os.chown(directory, st.st_uid, st.st_gid)

    def empty(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def count_entries(directory: Path) -> int:
    try:
        with os.scandir(directory) as entries:
            return sum(1 for _ in entries)
    except FileNotFoundError:
        return 0


def tokens_in(directory: Path) -> set[str]:
    found = set()
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return found
    for entry in entries:
        with open(entry.path, "rb") as fh:
            match = TOKEN_RE.search(fh.read(4096))
        if match:
            found.add(match.group(1).decode())
    return found


def run_load(spec: LoadSpec) -> dict:
    args = [sys.executable, str(HERE / "loadgen.py"), json.dumps(asdict(spec))]
    done = subprocess.run(args, capture_output=True, text=True, timeout=spec.deadline + 60)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def measure_server(
    peer: peers.Peer, workload: Workload, total: int, tag: str, deadline: float
) -> dict:
    submission = workload.kind == "submission"
    spec = LoadSpec(
        port=peer.ports[workload.kind],
        total=total,
        concurrency=workload.concurrency,
        size=workload.size,
        recipient=peers.RECIPIENT,
        sender=peers.RECIPIENT if submission else MX_SENDER,
        token_prefix=tag,
        starttls=submission,
        username=peers.RECIPIENT if submission else None,
        password=peers.PASSWORD if submission else None,
        deadline=deadline,
    )
    roots = peer.pids(workload.kind)
    new_dir = peer.maildir / "new" if peer.maildir else None
    user_before, system_before = proctree.cpu_times(roots)
    with proctree.PeakPSS(roots) as pss:
        result = run_load(spec)
        accepted = result["accepted"]
        drain_started = time.monotonic()
        if new_dir is not None:
            # Postfix answers 250 once the message is queued; wait for its delivery agent.
            drain_end = drain_started + max(60.0, total / 20)
            while count_entries(new_dir) < len(accepted) and time.monotonic() < drain_end:
                time.sleep(0.05)
        drain = time.monotonic() - drain_started
    user_after, system_after = proctree.cpu_times(roots)
    server_user, server_system = user_after - user_before, system_after - system_before
    server_cpu = server_user + server_system
    if new_dir is not None:
        counted = len(set(accepted) & tokens_in(new_dir))
    else:
        counted = len(accepted)
    elapsed = result["elapsed"]
    return {
        "accepted": len(accepted),
        "counted": counted,
        "failed": result["failed"],
        "errors": result["errors"],
        "sessions": result["sessions"],
        "elapsed": elapsed,
        "drain": drain,
        "accept_rate": counted / elapsed if elapsed else 0.0,
        "delivered_rate": counted / (elapsed + drain) if elapsed else 0.0,
        "server_cpu": server_cpu,
        "server_system_cpu": server_system,
        "cpu_ms_per_msg": 1000 * server_cpu / counted if counted else 0.0,
        "client_cpu": result["client_cpu"],
        "peak_pss_mb": pss.peak / 2**20,
    }


def measure_ceiling(ceiling: FsyncCeiling, workload: Workload, total: int, deadline: float) -> dict:
    args = [sys.executable, str(HERE / "fsync_ceiling.py"), str(ceiling.maildir), str(total)]
    args += [str(workload.concurrency), str(workload.size), str(deadline), ceiling.mode]
    done = subprocess.run(args, capture_output=True, text=True, timeout=deadline + 60, check=True)
    result = json.loads(done.stdout)
    written, elapsed = result["written"], result["elapsed"]
    rate = written / elapsed if elapsed else 0.0
    return {
        "accepted": written,
        "counted": count_entries(ceiling.maildir / "new"),
        "failed": total - written,
        "errors": [],
        "sessions": 0,
        "elapsed": elapsed,
        "drain": 0.0,
        "accept_rate": rate,
        "delivered_rate": rate,
        "server_cpu": result["cpu"],
        "cpu_ms_per_msg": 1000 * result["cpu"] / written if written else 0.0,
        "client_cpu": 0.0,
        "peak_pss_mb": 0.0,
        "ceiling": True,
    }


def start_peers(candidates: list[peers.Peer]) -> tuple[list[peers.Peer], dict[str, str]]:
    started, status = [], {}
    for peer in candidates:
        try:
            peer.start()
        except Exception as exc:  # noqa: BLE001 (a peer that cannot start is reported, not fatal)
            status[peer.name] = f"not measured: failed to start: {exc}"
            peer.stop()
            print(f"bench: {peer.name}: {status[peer.name]}", file=sys.stderr, flush=True)
            continue
        started.append(peer)
        status[peer.name] = "ok" + (f" ({peer.note})" if peer.note else "")
        print(f"bench: {peer.name} up, ports {peer.ports}", file=sys.stderr, flush=True)
    return started, status


def warm_up_all(started: list[peers.Peer], trash: Trash, status: dict[str, str]) -> dict:
    """Warm every server up, then record its memory at rest (PSS of the MX process tree)."""
    idle = {}
    for peer in started:
        try:
            warm_up(peer, trash)
        except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
            status[peer.name] += f"; warm-up failed: {exc}"
        idle[peer.name] = proctree.pss_bytes(peer.pids()) / 2**20
    return idle


def versions(tools_python: Path | None) -> dict[str, str]:
    def out(args: list[str]) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return "missing"

    import twisted

    import mailsuite

    source = Path(mailsuite.__file__).resolve().parent.parent
    commit = out(["git", "-C", str(source), "rev-parse", "--short", "HEAD"]) or "not a git tree"
    if out(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"]):
        commit += " (with uncommitted changes)"
    return {
        "mailsuite": f"{source} {commit}",
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "aiosmtpd": "not used"
        if tools_python is None
        else out([str(tools_python), "-c", "import aiosmtpd; print(aiosmtpd.__version__)"]),
        "postfix": out(["postconf", "-d", "-h", "mail_version"]),
        "dovecot": out(["dovecot", "--version"]),
        "kernel": platform.release(),
    }


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "loadavg": os.getloadavg()}


def profile_mailsuite(
    peer: peers.Peer, pyspy: Path, rate: float, seconds: int, out_dir: Path, trash: Trash
) -> dict:
    """Profile mailsuite under the 1 KB / 32 session load, three recordings in a row: wall-clock
    and GIL-only folded stacks (summarised), then a wall-clock flame graph (SVG)."""
    total = int(max(rate, 50) * (3 * seconds + 10))
    spec = LoadSpec(
        port=peer.ports["mx"],
        total=total,
        concurrency=32,
        size=1024,
        recipient=peers.RECIPIENT,
        sender=MX_SENDER,
        token_prefix="profile",
        deadline=6 * seconds + 60,
    )
    args = [sys.executable, str(HERE / "loadgen.py"), json.dumps(asdict(spec))]
    load = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stem = out_dir / "profile-mailsuite-1k-c32"
    files = {
        "wall": stem.with_name(stem.name + "-wall.txt"),
        "gil": stem.with_name(stem.name + "-gil.txt"),
        "svg": stem.with_name(stem.name + "-wall.svg"),
    }
    try:
        time.sleep(2)
        pid = peer.pids()[0]
        pyspy_profile.record(pyspy, pid, seconds, files["wall"], "raw")
        pyspy_profile.record(pyspy, pid, seconds, files["gil"], "raw", gil_only=True)
        pyspy_profile.record(pyspy, pid, seconds, files["svg"], "flamegraph")
    finally:
        try:
            load.wait(timeout=spec.deadline + 30)
        except subprocess.TimeoutExpired:
            load.kill()
            load.wait()
    if peer.maildir is not None:
        trash.move_aside(peer.maildir / "new")
    return {
        "seconds": seconds,
        "files": {name: str(path) for name, path in files.items()},
        "wall": pyspy_profile.summarise(files["wall"]),
        "gil": pyspy_profile.summarise(files["gil"]),
    }


def warm_up(peer: peers.Peer, trash: Trash) -> None:
    """A few unrecorded sessions per role, so no measured run pays for first-use setup."""
    for kind in peer.ports:
        submission = kind == "submission"
        spec = LoadSpec(
            port=peer.ports[kind],
            total=40,
            concurrency=4,
            size=1024,
            recipient=peers.RECIPIENT,
            sender=peers.RECIPIENT if submission else MX_SENDER,
            token_prefix=f"warmup-{kind}",
            starttls=submission,
            username=peers.RECIPIENT if submission else None,
            password=peers.PASSWORD if submission else None,
            deadline=60,
        )
        run_load(spec)
    if peer.maildir is not None:
        time.sleep(1)  # let an asynchronous delivery agent finish before moving the mail aside
        trash.move_aside(peer.maildir / "new")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 messages, 1 round (smoke test)")
    parser.add_argument("--messages", type=int, help="messages per run (default 2000; quick 200)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; quick 1)")
    parser.add_argument("--json", type=Path, help="write the runs and summary here")
    parser.add_argument("--peers", help="comma-separated subset of peers to run")
    parser.add_argument("--workloads", help="comma-separated subset of workload keys")
    parser.add_argument("--profile", action="store_true", help="py-spy mailsuite at 1 KB x32")
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument("--work-dir", type=Path, help="parent of the temporary work directory")
    parser.add_argument("--tools-venv", type=Path, help="reuse this venv for aiosmtpd/py-spy")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--no-install", action="store_true", help="do not run apt-get / pip")
    parser.add_argument(
        "--suite", choices=("smtp", "imap", "all"), default="all", help="which half (default all)"
    )
    parser.add_argument("--mailbox-messages", type=int, help="IMAP INBOX size (default 10000)")
    parser.add_argument("--idle-clients", type=int, help="IMAP sessions in IDLE (default 500)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailsuite-bench-", dir=args.work_dir))
    work.chmod(0o755)  # Postfix's and Dovecot's unprivileged processes must reach their directories
    print(f"bench: work directory {work}", file=sys.stderr, flush=True)
    set_child_subreaper()
    # SIGTERM (e.g. a CI timeout) still stops the servers through the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not args.no_install:
        deps.ensure_apt_packages()
    document: dict = {}
    try:
        cert, key = make_certificate(work)
        smtp_keys = {w.key for w in WORKLOADS}
        if args.suite in ("smtp", "all") and (
            not args.workloads or smtp_keys & set(args.workloads.split(","))
        ):
            document.update(run_smtp(args, work, cert, key))
        if args.suite in ("imap", "all"):
            document["imap"] = run_imap(args, work / "imap", cert, key)
    finally:
        reap_orphans()
        if args.keep:
            print(f"bench: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(document, indent=1))
        print(f"\nbench: wrote {args.json}", file=sys.stderr)
    return 0


def run_imap(args: argparse.Namespace, work: Path, cert: Path, key: Path) -> dict:
    """The IMAP/POP3 half (imap_suite.py): mailsuite against Dovecot on one generated INBOX."""
    work.mkdir(parents=True, exist_ok=True)
    settings = imap_suite.Settings(
        messages=args.mailbox_messages or (1000 if args.quick else 10_000),
        bodies=50 if args.quick else 500,
        idle_clients=args.idle_clients or (50 if args.quick else 500),
        rounds=args.rounds or (1 if args.quick else 3),
    )
    raise_fd_limit(4 * settings.idle_clients + 1024)
    workloads = args.workloads.split(",") if args.workloads else None
    peer_names = set(args.peers.split(",")) if args.peers else None
    doc = imap_suite.run(work, cert, key, settings, workloads, peer_names)
    doc["meta"]["versions"] = versions(None)
    doc["meta"]["machine"] = machine()
    meta = doc["meta"]
    print()
    print(
        f"IMAP/POP3 yardstick, {meta['machine']['cpus']} CPUs ({meta['machine']['cpu_model']}),"
        f" INBOX of {meta['messages']} messages ({meta['mailbox_bytes'] / 1e6:.0f} MB),"
        f" {settings.rounds} round(s), IMAPS/POP3S, one lock-step client;"
        f" dovecot {meta['versions']['dovecot']}"
    )
    print(report.mailbox_table(doc["summary"]))
    print("\nTargets:")
    print(report.targets_text(doc["targets"]))
    print("\nPeers:")
    for name, text in doc["peers"].items():
        print(f"  {name}: {text}")
    values = ", ".join(f"{name} {mb:.1f}" for name, mb in meta.get("end_pss_mb", {}).items())
    print(f"PSS at rest at the end (MB): {values}")
    return doc


def raise_fd_limit(wanted: int) -> None:
    """Many idle sessions: this process holds one socket each, the servers inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < wanted and os.geteuid() == 0:
        hard = wanted  # root may raise the hard limit too
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def run_smtp(args: argparse.Namespace, work: Path, cert: Path, key: Path) -> dict:
    """The SMTP half: returns the JSON document (meta, peers, summary, targets, runs, profile)."""
    total = args.messages or (200 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 3)
    deadline = 120.0 if args.quick else 600.0
    workloads = WORKLOADS
    if args.workloads:
        wanted = set(args.workloads.split(","))
        workloads = [w for w in WORKLOADS if w.key in wanted]
    tools_python = deps.ensure_tools_venv(args.tools_venv or work / "tools-venv")
    pyspy = tools_python.with_name("py-spy")
    from mailsuite.accounts.passwords import hash_password

    candidates: list[peers.Peer] = [
        peers.MailsuitePeer(work / "mailsuite", cert, key),
        peers.MailsuitePeer(work / "mailsuite-authn", cert, key, authn=True),
        peers.PostfixPeer(work / "postfix", cert, key, hash_password(peers.PASSWORD)),
        peers.AiosmtpdPeer(work / "aiosmtpd", tools_python),
        peers.TwistedMailPeer(work / "twisted-mail"),
        peers.SinkPeer(work / "smtp-sink"),
    ]
    ceilings = [FsyncCeiling(work, "maildir"), FsyncCeiling(work, "file")]
    if args.peers:
        wanted = set(args.peers.split(","))
        candidates = [p for p in candidates if p.name in wanted]
    trash = Trash(work / "trash")
    runs: list[dict] = []
    started: list[peers.Peer] = []
    status: dict[str, str] = {}
    profile = None
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(tools_python),
        "messages_per_run": total,
        "rounds": rounds,
        "messages_per_session": LoadSpec.per_session,
        "recipient": peers.RECIPIENT,
    }
    try:
        started, status = start_peers(candidates)
        meta["idle_pss_mb"] = warm_up_all(started, trash, status)
        measured: list = list(started)
        for ceiling in ceilings:
            if not args.peers or ceiling.name in args.peers.split(","):
                measured.append(ceiling)
                status[ceiling.name] = "ok (" + ceiling.note + ")"
        for round_no in range(1, rounds + 1):
            for workload in workloads:
                shift = (round_no - 1) % len(measured)
                for peer in measured[shift:] + measured[:shift]:
                    record = run_one(peer, workload, total, round_no, deadline, trash, status)
                    if record is not None:
                        runs.append(record)
        if args.profile:
            mailsuite = next((p for p in started if p.name == "mailsuite"), None)
            if mailsuite is not None:
                rates = [
                    r["accept_rate"]
                    for r in runs
                    if r["peer"] == "mailsuite" and r["workload"] == "mx-1k-c32"
                ]
                rate = max(rates) if rates else 300.0
                out_dir = args.json.parent if args.json else Path.cwd()
                profile = profile_mailsuite(
                    mailsuite, pyspy, rate, args.profile_seconds, out_dir, trash
                )
        meta["end_pss_mb"] = {p.name: proctree.pss_bytes(p.pids()) / 2**20 for p in started}
    finally:
        for peer in started:
            peer.stop()
        reap_orphans()
        if args.suite == "smtp":  # otherwise with the work directory, after the IMAP half
            print("bench: deleting delivered mail", file=sys.stderr, flush=True)
            trash.empty()
    meta["machine"]["loadavg_after"] = os.getloadavg()
    rows = report.summarise(runs)
    checks = report.check_targets(rows)
    print()
    print(
        f"SMTP yardstick, {meta['date']}, {meta['machine']['cpus']} CPUs "
        f"({meta['machine']['cpu_model']}), {total} messages x {rounds} round(s), "
        f"{LoadSpec.per_session} messages per session, lock-step client"
    )
    print(report.table(rows))
    print("\nTargets (median msgs/s ratio, mailsuite/peer):")
    print(report.targets_text(checks))
    print("\nPeers:")
    for name, text in status.items():
        print(f"  {name}: {text}")
    for title, key in (("after warm-up", "idle_pss_mb"), ("at the end", "end_pss_mb")):
        values = ", ".join(f"{name} {mb:.1f}" for name, mb in meta.get(key, {}).items())
        print(f"{chr(10) if key == 'idle_pss_mb' else ''}PSS at rest {title} (MB): {values}")
    if profile is not None:
        files = ", ".join(profile["files"].values())
        print(f"\nProfile of mailsuite, 1 KB x 32 sessions ({files})")
        print("wall clock (non-idle threads, blocking I/O included):")
        print(pyspy_profile.summary_text(profile["wall"]))
        print("GIL holder only (Python CPU):")
        print(pyspy_profile.summary_text(profile["gil"]))
    return {
        "meta": meta,
        "peers": status,
        "summary": rows,
        "targets": checks,
        "runs": runs,
        "profile": profile,
    }


def run_one(
    peer, workload: Workload, total: int, round_no: int, deadline: float, trash: Trash, status
) -> dict | None:
    if isinstance(peer, FsyncCeiling):
        if not peer.supports(workload):
            return None
    elif workload.kind not in peer.ports:
        return None
    elif not peer.alive():
        status[peer.name] = "died during the run (see its log in the work directory)"
        return None
    tag = f"r{round_no}-{workload.key}-{peer.name}"
    try:
        if isinstance(peer, FsyncCeiling):
            record = measure_ceiling(peer, workload, total, deadline)
        else:
            record = measure_server(peer, workload, total, tag, deadline)
    except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
        print(f"bench: {tag}: failed: {exc}", file=sys.stderr, flush=True)
        return None
    finally:
        if peer.maildir is not None:
            trash.move_aside(peer.maildir / "new")
    record.update(
        workload=workload.key,
        kind=workload.kind,
        size=workload.size,
        concurrency=workload.concurrency,
        peer=peer.name,
        round=round_no,
        total=total,
        durable=peer.durable,
    )
    print(
        f"bench: {tag}: {record['accept_rate']:.0f} msgs/s, {record['counted']}/{total} counted,"
        f" server CPU {record['server_cpu']:.1f} s, PSS {record['peak_pss_mb']:.1f} MB"
        + (f", errors: {record['errors'][:2]}" if record["errors"] else ""),
        file=sys.stderr,
        flush=True,
    )
    return record


if __name__ == "__main__":
    sys.exit(main())
