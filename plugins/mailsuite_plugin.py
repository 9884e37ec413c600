"""The twistd plugin: ``twistd -n mailsuite [--config FILE] [--data-dir DIR] [--sandbox]``.

Installed as ``twisted/plugins/mailsuite_plugin.py``. It imports nothing of the server at module
level, so that ``twistd -r <reactor>`` can still choose the reactor before one is installed.
"""

from __future__ import annotations

import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


class Options(usage.Options):
    synopsis = "[--config FILE] [--data-dir DIR] [--sandbox]"
    longdesc = (
        "Run the mailsuite mail server: ESMTP (MX, submission, submissions) delivering into "
        "Maildir. With no --config, embedded defaults listen on 127.0.0.1 high ports."
    )
    optParameters = [
        ["config", "c", None, "TOML configuration file (default: embedded defaults)"],
        ["data-dir", "d", None, "data directory (overrides server.data_dir)"],
    ]
    optFlags = [
        ["sandbox", None, "sandbox mode: capture every message, deliver nothing (sandbox.enabled)"],
    ]


@implementer(IServiceMaker, IPlugin)
class MailsuiteServiceMaker:
    tapname = "mailsuite"
    description = (
        "Self-hosted mail server: ESMTP (MX, submission), Maildir delivery, outbound queue,"
        " IMAP4rev1 and POP3, one user database."
    )
    options = Options

    def makeService(self, options: Options):
        from mailsuite.config import ConfigError, load_config
        from mailsuite.runtime.privileges import switch_target
        from mailsuite.runtime.tls import TLSConfigError
        from mailsuite.service import make_service

        try:
            config = load_config(options["config"], options["data-dir"])
            if options["sandbox"]:
                from mailsuite.sandbox.settings import turn_on

                config = turn_on(config)
            # twistd's own options: --uid/--gid, applied after privilegedStartService.
            return make_service(config, switch_target(getattr(options, "parent", None)))
        except (ConfigError, TLSConfigError) as exc:
            sys.stderr.write(f"mailsuite: {exc}\n")
            raise SystemExit(1) from None


serviceMaker = MailsuiteServiceMaker()
