"""Drive a real Thunderbird (Debian's ``thunderbird``) headless through Marionette.

Marionette's wire protocol is tiny (``<length>:<json>`` frames of ``[0, id, command, params]``
answered by ``[1, id, error, result]``), so a small client here replaces the
``marionette_driver`` package. Everything runs as chrome-context JavaScript against Thunderbird's
own mail back end (the account wizard's CreateInBackend, nsIMsgFolder, nsIMsgSend): the code its
UI calls, without a display. Thunderbird talks to 127.0.0.1 only (see PREFS).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from support.net import free_port
from test_e2e_twistd import ServerProcess

ROLES = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http", "metrics")
# nsMsgSocketType values ("Connection security" in the account settings).
STARTTLS, SSL_TLS = 2, 3

# Every proxy points at a closed port (127.0.0.1 itself is never proxied) and remote DNS goes
# through that dead SOCKS proxy, so nothing leaves the machine; the services that phone home,
# the first-run pages and the periodic mail check (biff) are off, so only the tests trigger IMAP.
PREFS: dict[str, Any] = {
    "marionette.port": 0,  # a free port, written to <profile>/MarionetteActivePort
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1",
    "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1",
    "network.proxy.ssl_port": 9,
    "network.proxy.socks": "127.0.0.1",
    "network.proxy.socks_port": 9,
    "network.proxy.socks_remote_dns": True,
    "network.proxy.no_proxies_on": "",
    "network.proxy.allow_hijacking_localhost": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "services.settings.server": "data:,#remote-settings-dummy/v1",
    "app.update.enabled": False,
    "app.update.auto": False,
    "app.update.disabledForTesting": True,
    "app.normandy.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.server": "",
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "security.OCSP.enabled": 0,
    "toolkit.startup.max_resumed_crashes": -1,
    "mail.provider.enabled": False,
    "mail.shell.checkDefaultClient": False,
    "mail.rights.version": 1,
    "mail.inappnotifications.enabled": False,
    "mailnews.start_page.enabled": False,
    "mailnews.auto_config.fetchFromISP.enabled": False,
    "mailnews.auto_config.guess.enabled": False,
    "mailnews.database.global.indexer.enabled": False,
    "mail.biff.show_alert": False,
    "mail.biff.play_sound": False,
    # SMTP and POP3 are JavaScript in Thunderbird: their protocol logs go to the console, which
    # this sends to stdout (IMAP is C++: MOZ_LOG=IMAP:5 in its environment).
    "mailnews.smtp.loglevel": "All",
    "mailnews.pop3.loglevel": "All",
    "devtools.console.stdout.chrome": True,
}

# Defined before every script: small helpers over Thunderbird's mail API.
PRELUDE = """
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
async function until(what, probe, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await sleep(100);
  }
}
function account(key) {
  const found = MailServices.accounts.getAccount(key);
  if (!found) throw new Error("no account " + key);
  return found;
}
function folder(key, flag) {
  const root = account(key).incomingServer.rootFolder;
  return root.getFolderWithFlags(Ci.nsMsgFolderFlags[flag]);
}
function within(what, promise, ms) {
  let timer;
  const late = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error("timed out waiting for " + what)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
function urlListener() {
  let listener;
  const done = new Promise(resolve => {
    listener = {
      QueryInterface: ChromeUtils.generateQI(["nsIUrlListener"]),
      OnStartRunningUrl() {},
      OnStopRunningUrl(url, status) { resolve(status); },
    };
  });
  return [listener, done];
}
// Folder discovery (LIST, then LSUB) on its own IMAP URL, as the back end runs it when an account
// is expanded. Opening INBOX starts one as well in 153, but a run with 140 never got the folders
// that way, so the tests ask for it. Feature checks pick the API, not version numbers. Resolves
// to the nsresult.
async function discoverFolders(key, ms) {
  const server = account(key).incomingServer;
  const imap = MailServices.imap ?? (Ci.nsIImapService &&
    Cc["@mozilla.org/messenger/imapservice;1"]?.getService(Ci.nsIImapService));
  if (typeof imap?.discoverAllFolders == "function") {
    const [listener, done] = urlListener();
    imap.discoverAllFolders(server.rootFolder, listener, null);
    return await within("folder discovery", done, ms);
  }
  if (typeof server.performExpand != "function" || typeof server.verifyLogon != "function") {
    throw new Error("no folder discovery API in Thunderbird " + Services.appinfo.version);
  }
  // performExpand takes no listener (the caller waits for the folders) and does nothing while
  // the password is not in memory yet (before the first login): log in first.
  const [listener, done] = urlListener();
  server.verifyLogon(listener, null);
  const status = await within("login", done, ms);
  if (status == 0) server.performExpand(null);
  return status;
}
// Top-level folders by their mailbox name on the server (INBOX, Sent...): their nsMsgFolderFlags
// names and IMAP box flags (set from LIST's attributes).
function folderTable(key) {
  const names = ["Inbox", "SentMail", "Drafts", "Trash", "Junk", "Archive", "Templates", "Queue"];
  const table = {};
  for (const sub of account(key).incomingServer.rootFolder.subFolders) {
    const box = sub.QueryInterface(Ci.nsIMsgImapMailFolder);
    table[box.onlineName || sub.name] = {
      flags: names.filter(name => sub.flags & Ci.nsMsgFolderFlags[name]),
      boxFlags: box.boxFlags,
    };
  }
  return table;
}
function findMessage(key, flag, messageId) {
  return [...folder(key, flag).messages].find(hdr => hdr.messageId == messageId);
}
function describe(hdr) {
  return {
    subject: hdr.mime2DecodedSubject, author: hdr.mime2DecodedAuthor,
    messageId: hdr.messageId, read: hdr.isRead, flagged: hdr.isFlagged,
  };
}
"""


class MarionetteError(Exception):
    """An error answer from Marionette (a JavaScript exception, an alert, a timeout...)."""


class Marionette:
    """A minimal Marionette client: one session in the chrome context."""

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        self.next_id = 0
        hello = self._read()
        if hello.get("marionetteProtocol") != 3:
            raise MarionetteError(f"unexpected Marionette greeting {hello!r}")

    def _read(self) -> Any:
        while b":" not in self.buffer:
            self._fill()
        length, _, self.buffer = self.buffer.partition(b":")
        while len(self.buffer) < int(length):
            self._fill()
        frame, self.buffer = self.buffer[: int(length)], self.buffer[int(length) :]
        return json.loads(frame)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise MarionetteError("Marionette closed the connection")
        self.buffer += chunk

    def command(self, name: str, params: dict[str, Any] | None = None) -> Any:
        self.next_id += 1
        data = json.dumps([0, self.next_id, name, params or {}]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        while True:
            kind, msg_id, error, result = self._read()
            if kind == 1 and msg_id == self.next_id:
                break
        if error:
            raise MarionetteError(
                f"{name}: {error.get('error')}: {error.get('message')} {error.get('data') or ''}"
            )
        return result

    def start_chrome_session(self, script_timeout: float) -> None:
        self.command("WebDriver:NewSession", {"capabilities": {"alwaysMatch": {}}})
        self.command("Marionette:SetContext", {"value": "chrome"})
        self.command("WebDriver:SetTimeouts", {"script": int(script_timeout * 1000)})

    def js(self, body: str, *args: Any) -> Any:
        """Run ``body`` as an async chrome function after PRELUDE; ``args`` are arguments[i]."""
        script = f"{PRELUDE}\nreturn (async () => {{\n{body}\n}})();"
        reply = self.command("WebDriver:ExecuteScript", {"script": script, "args": list(args)})
        return reply["value"]

    def close(self) -> None:
        self.sock.close()


class MailServer(ServerProcess):
    """``twistd -n mailsuite`` with every role on its own free 127.0.0.1 port."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.ports = {role: free_port() for role in ROLES}
        self.config.write_text(
            '[server]\nhostname = "mail.e2e.example"\n'
            + "[verify]\nenabled = false\n"  # no DNS here (tests/authn checks mail with it)
            + "".join(f'[{role}]\nlisten = ["127.0.0.1:{p}"]\n' for role, p in self.ports.items())
        )

    def certificate_base64(self) -> str:
        pem = (self.data_dir / "tls" / "cert.pem").read_text()
        return "".join(line for line in pem.splitlines() if not line.startswith("-----"))

    def maildir_files(self, address: str, folder: str = "") -> list[Path]:
        """Message files of a Maildir++ folder ("" is INBOX, "Sent" is .Sent), new and cur."""
        local, _, domain = address.partition("@")
        base = self.data_dir / "mail" / domain / local
        if folder:
            base = base / f".{folder}"
        return sorted(
            p for sub in ("new", "cur") if (base / sub).is_dir() for p in (base / sub).iterdir()
        )


class Thunderbird:
    """``thunderbird --headless --marionette`` on a fresh profile, in its own process group."""

    def __init__(self, binary: str, workdir: Path, prefs: dict[str, Any] | None = None) -> None:
        """``prefs``: set on top of PREFS (e.g. the wizard test's proxy and host names)."""
        self.binary = binary
        self.prefs = {**PREFS, **(prefs or {})}
        self.profile = workdir / "profile"
        self.home = workdir / "home"
        self.imap_log = workdir / "imap.log"  # MOZ_LOG adds ".moz_log"
        self.console_log = workdir / "thunderbird.out"  # stdout+stderr: SMTP/POP3 logs
        self.process: subprocess.Popen | None = None
        self.marionette: Marionette | None = None

    def log_files(self) -> list[Path]:
        return [self.console_log, *sorted(self.imap_log.parent.glob(self.imap_log.name + "*"))]

    def start(self, deadline: float = 60.0) -> Marionette:
        self.profile.mkdir(parents=True)
        self.home.mkdir(parents=True)
        (self.profile / "user.js").write_text(
            "".join(
                f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in self.prefs.items()
            )
        )
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")},
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "MOZ_HEADLESS": "1",
            "MOZ_CRASHREPORTER_DISABLE": "1",
            "MOZ_LOG": "IMAP:5,timestamp",
            "MOZ_LOG_FILE": str(self.imap_log),
        }
        with self.console_log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--headless",
                    "--marionette",
                    "--remote-allow-system-access",
                    "--no-remote",
                    "-profile",
                    str(self.profile),
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its child processes stay in a group we own
            )
        port_file = self.profile / "MarionetteActivePort"
        end = time.monotonic() + deadline
        while self.marionette is None:
            if self.process.poll() is not None:
                raise RuntimeError(f"thunderbird exited with {self.process.returncode}")
            if time.monotonic() > end:
                raise RuntimeError("Marionette did not start")
            text = port_file.read_text().strip() if port_file.exists() else ""
            if text:
                try:
                    self.marionette = Marionette(int(text), timeout=deadline + 30)
                except OSError:
                    pass
            time.sleep(0.1)
        self.marionette.start_chrome_session(script_timeout=deadline)
        return self.marionette

    def stop(self) -> None:
        """Quit through Marionette (flushes the logs), else SIGTERM, then SIGKILL: only the
        process group we created, and only while its leader (our child) is alive."""
        if self.process is None or self.process.poll() is not None:
            return
        if self.marionette is not None:
            try:
                self.marionette.command("Marionette:Quit", {"flags": ["eForceQuit"]})
            except (OSError, MarionetteError):
                self._signal(signal.SIGTERM)
            self.marionette.close()
        else:
            self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def _signal(self, sig: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)  # our child leads this group (not yet reaped)


class MailClient:
    """What a person does in Thunderbird, as calls into its mail back end."""

    def __init__(self, marionette: Marionette) -> None:
        self.m = marionette

    def accept_certificate(self, cert_base64: str, host: str, ports: list[int]) -> None:
        """The "Confirm Security Exception" dialog: a permanent override per host and port."""
        self.m.js(
            """
            const [b64, host, ports] = arguments;
            const certdb = Cc["@mozilla.org/security/x509certdb;1"]
              .getService(Ci.nsIX509CertDB);
            const cert = certdb.constructX509FromBase64(b64);
            const overrides = Cc["@mozilla.org/security/certoverride;1"]
              .getService(Ci.nsICertOverrideService);
            for (const port of ports) {
              overrides.rememberValidityOverride(host, port, {}, cert, false);
            }
            """,
            cert_base64,
            host,
            ports,
        )

    def add_account(
        self,
        address: str,
        password: str,
        incoming: tuple[str, int, int],
        outgoing: tuple[int, int],
    ) -> str:
        """Manual setup in the account wizard: ``incoming=(type, port, socketType)``,
        ``outgoing=(port, socketType)``, host 127.0.0.1, "Normal password", password saved.
        Returns the account key."""
        return self.m.js(
            """
            const [address, password, [type, port, socketType], [smtpPort, smtpSocket]]
              = arguments;
            const { AccountConfig } = ChromeUtils.importESModule(
              "resource:///modules/accountcreation/AccountConfig.sys.mjs");
            const { CreateInBackend } = ChromeUtils.importESModule(
              "resource:///modules/accountcreation/CreateInBackend.sys.mjs");
            const config = new AccountConfig();
            const auth = Ci.nsMsgAuthMethod.passwordCleartext;
            Object.assign(config.incoming, {
              type, hostname: "127.0.0.1", port, username: address, password, socketType, auth,
              loginAtStartup: false, checkInterval: 600,
            });
            Object.assign(config.outgoing, {
              type: "smtp", hostname: "127.0.0.1", port: smtpPort, username: address, password,
              socketType: smtpSocket, auth,
            });
            config.identity.realname = address.split("@")[0];
            config.identity.emailAddress = address;
            config.rememberPassword = true;
            const created = await CreateInBackend.createAccountInBackend(config);
            const server = created.incomingServer;
            server.doBiff = false;  // no periodic check: only the tests (and IDLE) fetch mail
            if (type == "imap") {
              const imap = server.QueryInterface(Ci.nsIImapIncomingServer);
              if ("useIdle" in imap) imap.useIdle = true;  // the default; the push test needs it
            }
            return created.key;
            """,
            address,
            password,
            list(incoming),
            list(outgoing),
        )

    def update_folder(self, key: str, flag: str = "Inbox") -> int:
        """Open an IMAP folder (log in, SELECT, sync its headers), as clicking it does; returns
        the nsresult. Whether this also discovers the other folders depends on the version:
        ``folders`` asks for that itself."""
        return self.m.js(
            """
            const [key, flag] = arguments;
            const [listener, done] = urlListener();
            folder(key, flag).QueryInterface(Ci.nsIMsgImapMailFolder)
              .updateFolderWithListener(null, listener);
            return await done;
            """,
            key,
            flag,
        )

    def folders(
        self, key: str, expect: list[str] | tuple[str, ...] = (), timeout: float = 30.0
    ) -> dict[str, dict[str, Any]]:
        """Ask the server for the folder list (``discoverFolders``), then return the top-level
        folders (``folderTable``) once every ``expect``ed mailbox is among them."""
        return self.m.js(
            """
            const [key, expect, ms] = arguments;
            const end = Date.now() + ms;
            const status = await discoverFolders(key, ms);
            if (status) {
              throw new Error("folder discovery failed: nsresult 0x" + (status >>> 0).toString(16));
            }
            const complete = () => {
              const table = folderTable(key);
              return expect.every(name => name in table) && table;
            };
            try {
              return await until("folders " + expect, complete, end - Date.now());
            } catch (e) {
              throw new Error(e.message + "; there are " + JSON.stringify(folderTable(key)));
            }
            """,
            key,
            list(expect),
            int(timeout * 1000),
        )

    def wait_for_message(
        self, key: str, message_id: str, timeout: float, flag: str = "Inbox"
    ) -> dict[str, Any]:
        """Wait, without asking the server, until the message shows up in the folder."""
        return self.m.js(
            """
            const [key, flag, messageId, ms] = arguments;
            const hdr = await until("message " + messageId + " in " + flag,
              () => findMessage(key, flag, messageId), ms);
            return describe(hdr);
            """,
            key,
            flag,
            message_id,
            int(timeout * 1000),
        )

    def message_text(self, key: str, message_id: str, flag: str = "Inbox") -> str:
        """Stream the message as the reading pane does and return its plain-text body."""
        return self.m.js(
            """
            const [key, flag, messageId] = arguments;
            const { MsgHdrToMimeMessage } = ChromeUtils.importESModule(
              "resource:///modules/gloda/MimeMessage.sys.mjs");
            const hdr = findMessage(key, flag, messageId);
            return await new Promise(resolve => MsgHdrToMimeMessage(
              hdr, null, (aHdr, mime) => resolve(mime.coerceBodyToPlaintext(hdr.folder)), true));
            """,
            key,
            flag,
            message_id,
        )

    def mark_read_and_flag(self, key: str, message_id: str) -> dict[str, Any]:
        return self.m.js(
            """
            const [key, messageId] = arguments;
            const hdr = findMessage(key, "Inbox", messageId);
            hdr.folder.markMessagesRead([hdr], true);
            hdr.folder.markMessagesFlagged([hdr], true);
            return describe(hdr);
            """,
            key,
            message_id,
        )

    def delete(self, key: str, message_id: str) -> int:
        """The Delete key: with the IMAP default "move to Trash" model, a move to Trash."""
        return self.m.js(
            """
            const [key, messageId] = arguments;
            const hdr = findMessage(key, "Inbox", messageId);
            return await new Promise(resolve => hdr.folder.deleteMessages([hdr], null, false,
              false, {
                QueryInterface: ChromeUtils.generateQI(["nsIMsgCopyServiceListener"]),
                onStartCopy() {}, onProgress() {}, setMessageKey() {},
                getMessageId() { return null; },
                onStopCopy(status) { resolve(status); },
              }, true));
            """,
            key,
            message_id,
        )

    def send(self, key: str, to: str, subject: str, body: str, message_id: str) -> list[str]:
        """Compose and "Send Now" from the account's identity (copy to Sent as configured).
        Returns the send listener's events, ending with the Sent copy's status."""
        return self.m.js(
            """
            const [key, to, subject, body, messageId] = arguments;
            const sender = account(key);
            const identity = sender.defaultIdentity;
            const fields = Cc["@mozilla.org/messengercompose/composefields;1"]
              .createInstance(Ci.nsIMsgCompFields);
            fields.from = identity.fullName + " <" + identity.email + ">";
            fields.to = to;
            fields.subject = subject;
            fields.body = body;
            fields.messageId = "<" + messageId + ">";
            const events = [];
            await new Promise(resolve => {
              const listener = {
                QueryInterface: ChromeUtils.generateQI(
                  ["nsIMsgSendListener", "nsIMsgCopyServiceListener"]),
                onStartSending() {}, onSendProgress() {}, onStatus() {},
                onGetDraftFolderURI() {}, onStartCopy() {}, onProgress() {},
                setMessageKey() {}, getMessageId() { return null; },
                onStopSending(id, status) { events.push("sent " + status); },
                onTransportSecurityError(id, status) { events.push("tls error " + status); },
                onSendNotPerformed(id, status) {
                  events.push("not sent " + status); resolve();
                },
                onStopCopy(status) { events.push("copied " + status); resolve(); },
              };
              Cc["@mozilla.org/messengercompose/send;1"].createInstance(Ci.nsIMsgSend)
                .createAndSendMessage(null, identity, sender.key, fields, false, false,
                  Ci.nsIMsgSend.nsMsgDeliverNow, null, "text/plain", body, null, null,
                  listener, null, "", Ci.nsIMsgCompType.New);
            });
            return events;
            """,
            key,
            to,
            subject,
            body,
            message_id,
        )

    def pop3_get_new_messages(self, key: str) -> int:
        """ "Get Messages" on a POP3 account: download into its local Inbox; the nsresult."""
        return self.m.js(
            """
            const key = arguments[0];
            const [listener, done] = urlListener();
            account(key).incomingServer.getNewMessages(folder(key, "Inbox"), null, listener);
            return await done;
            """,
            key,
        )
