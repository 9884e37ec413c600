"""The admin page (/admin): who gets in (admins only, by password or a one-time link), what it
shows, how it is protected, and a real headless browser (Debian's chromium) rendering it."""

from __future__ import annotations

import http.cookiejar
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import PASSWORD, cli_ok
from support.tools import unavailable

from mailsuite.admin.cli import main as admin_main
from mailsuite.web.admin import pages

ALICE, BOB = "alice@example.com", "bob@example.com"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def browser():
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(jar), NoRedirect()
    )
    return opener, jar


def call(opener, url: str, form: dict | None = None):
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with opener.open(urllib.request.Request(url, data=data), timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def admin_cli(suite, *args: str) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = admin_main(["--data-dir", str(suite.config.data_dir), *args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def admin_site(suite):
    cli_ok(admin_cli(suite, "user", "admin", ALICE))
    return suite, f"http://127.0.0.1:{suite.port('http')}"


def test_only_admins_get_in_and_the_session_ends_at_logout(admin_site):
    suite, base = admin_site
    opener, jar = browser()
    status, headers, _ = call(opener, base + "/admin")
    assert status == 303 and headers["Location"] == "/admin/login"
    status, headers, body = call(opener, base + "/admin/login")
    assert status == 200 and "<form" in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"
    for user, password in ((ALICE, "wrong"), (BOB, PASSWORD), ("nobody@example.com", "x")):
        status, _, body = call(opener, base + "/admin/login", {"user": user, "password": password})
        assert status == 403 and "not an administrator" in body  # one answer for all three
    assert not list(jar)
    status, headers, _ = call(opener, base + "/admin/login", {"user": ALICE, "password": PASSWORD})
    assert status == 303 and headers["Location"] == "/admin"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    status, _, body = call(opener, base + "/admin")
    assert status == 200 and "Queue (0)" in body and ALICE in body
    status, headers, _ = call(opener, base + "/admin/logout", {})
    assert status == 303
    status, headers, _ = call(opener, base + "/admin")
    assert status == 303 and headers["Location"] == "/admin/login"


def test_the_queue_shows_what_waits(admin_site):
    import smtplib

    suite, base = admin_site
    context = suite.tls_context()
    with smtplib.SMTP("127.0.0.1", suite.port("submission"), timeout=10) as client:
        client.starttls(context=context)
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, ["someone@far.example"], b"Subject: wait\r\n\r\nqueued\r\n")
    opener, _ = browser()
    call(opener, base + "/admin/login", {"user": ALICE, "password": PASSWORD})
    status, _, body = call(opener, base + "/admin")
    assert status == 200 and "Queue (1)" in body and "someone@far.example" in body


def test_the_report_shows_the_last_day_from_the_delivery_log(admin_site):
    import smtplib

    from support.wait import wait_until

    suite, base = admin_site
    with smtplib.SMTP("127.0.0.1", suite.port("smtp"), timeout=10) as client:
        client.sendmail("carol@remote.example", [BOB], b"Subject: hi\r\n\r\nhello\r\n")
    opener, _ = browser()
    call(opener, base + "/admin/login", {"user": ALICE, "password": PASSWORD})

    def dashboard() -> str | None:
        body = call(opener, base + "/admin")[2]
        return body if "accepted: 1" in body else None

    body = wait_until(dashboard, what="the delivery log's report on the page")
    row = body[body.index("<td>example.com</td>") :]
    assert row.startswith("<td>example.com</td><td>1</td>")  # one local delivery


def test_a_one_time_link_works_once_and_only_for_admins(admin_site):
    suite, base = admin_site
    code, _, err = admin_cli(suite, "web", "link", BOB)
    assert code == 1 and "not an administrator" in err
    code, out, _ = admin_cli(suite, "web", "link", ALICE)
    assert code == 0
    url = out.splitlines()[0]
    assert url.startswith("http://127.0.0.1:") and "/admin/login?once=" in url
    link = base + url[url.index("/admin/") :]  # the listener's real port (the config says 0)
    opener, _ = browser()
    status, headers, _ = call(opener, link)
    assert status == 303 and headers["Location"] == "/admin"
    assert call(opener, base + "/admin")[0] == 200
    status, _, body = call(browser()[0], link)
    assert status == 403 and "not valid" in body


def test_captured_html_is_sanitised_and_framed():
    message = {
        "subject": "<b>hi</b>",
        "headers": [["Subject", "<script>x</script>"]],
        "parts": [
            {
                "content_type": "text/html",
                "text": '<p onclick="steal()">Hello<script>alert(1)</script>'
                '<img src="https://tracker.example/p.gif"><a href="javascript:x()">x</a></p>',
            },
            {"content_type": "text/plain", "text": "<plain & simple>"},
        ],
    }
    html = pages.message_page(message, "alice@example.com").decode()
    assert "<script>" not in html and "&lt;script&gt;" in html
    frame = html[html.index("<iframe") : html.index("</iframe>")]
    assert "sandbox" in frame and "onclick" not in frame and "alert(1)" not in frame
    assert "javascript:" not in frame and "Hello" in frame
    assert "&lt;plain &amp; simple&gt;" in html


def test_sandbox_captures_are_listed_and_shown_safely(make_suite):
    import smtplib

    suite = make_suite({"sandbox.enabled": True})
    suite.db.add_domain("example.com")
    from mailsuite.accounts.passwords import hash_password

    suite.db.add_user(ALICE, hash_password(PASSWORD))
    suite.db.set_admin(ALICE, True)
    html = (
        "From: App <app@shop.example>\r\nTo: c@x.example\r\nSubject: Your order\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        '<p>Thanks!<script>alert(1)</script><img src="https://tracker.example/p.gif"></p>\r\n'
    )
    with smtplib.SMTP("127.0.0.1", suite.port("smtp"), timeout=10) as client:
        client.sendmail("app@shop.example", ["c@x.example"], html.encode())
    base = f"http://127.0.0.1:{suite.port('http')}"
    opener, _ = browser()
    call(opener, base + "/admin/login", {"user": ALICE, "password": PASSWORD})
    status, _, body = call(opener, base + "/admin")
    assert status == 200 and "captured messages (1)" in body and "Your order" in body
    link = body[body.index('href="/admin/sandbox/') + 6 :].split('"', 1)[0]
    status, headers, page = call(opener, base + link)
    assert status == 200 and "Thanks!" in page and "<iframe sandbox" in page
    assert "alert(1)" not in page and "default-src 'none'" in headers["Content-Security-Policy"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    unavailable("chromium is not installed on this machine")


def test_a_real_browser_renders_the_dashboard(admin_site, tmp_path):
    suite, base = admin_site
    binary = _chromium()
    shots = []
    for mode in ("--dump-dom", f"--screenshot={tmp_path / 'admin.png'}"):
        code, out, _ = admin_cli(suite, "web", "link", ALICE)
        url = out.splitlines()[0]
        link = base + url[url.index("/admin/") :]
        done = subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={tmp_path / mode.split('=')[0].strip('-')}",
                "--window-size=1280,800",
                mode,
                link,
            ],
            capture_output=True,
            timeout=120,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        shots.append(done.stdout.decode())
    dom = shots[0]
    assert "Queue (0)" in dom and "Last 24 hours" in dom and ALICE in dom
    png = Path(tmp_path / "admin.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot of the admin page: {png}")
