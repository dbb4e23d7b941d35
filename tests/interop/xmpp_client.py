#!/usr/bin/python3
"""A small real XMPP client for upslot's interoperability tests (slixmpp).

Two roles, one per process, so that two independent clients talk through
the XMPP server exactly as two users' apps would:

    receive  Log in, announce presence, print ``READY``, then wait for
             ``--count`` chat messages whose body is an HTTP URL. Download
             every URL (twice: once as aiohttp normalises it, once with the
             exact bytes received) and print one JSON line per download.

    send     Log in, discover the XEP-0363 upload service (disco#items on
             the domain, then disco#info for ``urn:xmpp:http:upload:0``; the
             plugin's own discovery is broken in slixmpp 1.8.3), upload every
             ``--file`` with slixmpp's ``upload_file()`` and send each GET
             URL to ``--to`` in a chat message (body + XEP-0066 OOB). Prints
             one JSON line per upload, with the slot the server handed out.

    upload   Like ``send``, without ``--to``: upload every ``--file`` and
             print its JSON line, but send no message.

    unregister  Log in and delete the account in-band (XEP-0077
             ``<remove/>``); print one JSON line once the server confirmed.
             The server then closes the stream ("Account deleted"). Prosody
             always answers first; ejabberd 23.01 may close the stream before
             its answer arrives, which this role reports as a timeout.

Every failure prints ``xmpp_client: error: ...`` on stderr and exits with a
non-zero status; ``--timeout`` bounds the whole run, so it never hangs.

Run it with Debian's interpreter in isolated mode (``/usr/bin/python3 -I``):
slixmpp and aiohttp come from Debian packages.
"""

import argparse
import asyncio
import hashlib
import json
import logging
import os
import signal
import sys

try:
    import aiohttp
    import slixmpp
    import yarl
except ImportError as missing:
    sys.exit(
        f"xmpp_client: error: {missing} (under {sys.executable}); "
        "install the Debian packages python3-slixmpp and python3-aiohttp"
    )

UPLOAD_NS = "urn:xmpp:http:upload:0"


class ClientError(Exception):
    """A failure worth a one-line explanation (no traceback)."""


def emit(record):
    """Print one JSON line on stdout, immediately."""
    print(json.dumps(record, ensure_ascii=False), flush=True)


class Client(slixmpp.ClientXMPP):
    """A ClientXMPP whose session start and stream errors can be awaited."""

    def __init__(self, jid, password):
        super().__init__(jid, password)
        for plugin in ("xep_0030", "xep_0066", "xep_0199", "xep_0363"):
            self.register_plugin(plugin)
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_auth", self._on_fail("authentication failed"))
        self.add_event_handler(
            "connection_failed", self._on_fail("could not connect to the XMPP server")
        )
        self.add_event_handler("stream_error", self._on_fail("stream error"))

    def _on_start(self, _event):
        if not self.started.done():
            self.started.set_result(True)

    def _on_fail(self, what):
        def handler(event):
            if not self.started.done():
                self.started.set_exception(ClientError(f"{self.boundjid.bare}: {what}: {event}"))

        return handler

    async def login(self, host, port):
        """Connect in clear (loopback only) and wait for the session."""
        self.connect((host, port), force_starttls=False, disable_starttls=True)
        await self.started
        await self.get_roster()
        self.send_presence()
        # A round trip to the server: once the pong is here, the server has
        # processed our presence, so messages to our bare JID reach us.
        await self["xep_0199"].ping(jid=self.boundjid.domain, timeout=10)


async def find_upload_service(client):
    """Return (service JID, max size or None) of the domain's upload service."""
    domain = client.boundjid.domain
    candidates = [domain]
    items = await client["xep_0030"].get_items(jid=domain, timeout=10)
    candidates += [item[0] for item in items["disco_items"]["items"]]
    for jid in candidates:
        info = await client["xep_0030"].get_info(jid=jid, timeout=10)
        if UPLOAD_NS not in info["disco_info"]["features"]:
            continue
        max_size = None
        for form in info["disco_info"].iterables:
            values = form["values"]
            if values.get("FORM_TYPE") in (UPLOAD_NS, [UPLOAD_NS]):
                try:
                    max_size = int(values.get("max-file-size"))
                except (TypeError, ValueError):
                    pass
        return jid, max_size
    raise ClientError(f"no service advertising {UPLOAD_NS} on {domain} (checked {candidates})")


async def run_send(args):
    client = Client(args.jid, args.password)
    await client.login(args.host, args.port)
    plugin = client["xep_0363"]
    service, max_size = await find_upload_service(client)
    plugin.upload_service = service
    if max_size is not None:
        plugin.max_file_size = max_size

    # Record the slot each request returns, for the test's diagnostics.
    slots = []
    request_slot = plugin.request_slot

    def record(future):
        if not future.cancelled() and future.exception() is None:
            slots.append(future.result()["http_upload_slot"])

    def recording_request_slot(*a, **kw):
        future = request_slot(*a, **kw)
        future.add_done_callback(record)
        return future

    plugin.request_slot = recording_request_slot

    for path in args.file:
        before = len(slots)
        try:
            get_url = await plugin.upload_file(path, timeout=args.timeout)
        except Exception as e:  # slixmpp raises IqError, HTTPError, FileTooBig, ...
            where = f"PUT {slots[-1]['put']['url']}" if len(slots) > before else "slot request"
            raise ClientError(
                f"upload of {os.path.basename(path)!r} via {service} failed at {where}: {describe(e)}"
            ) from e
        slot = slots[-1] if len(slots) > before else None
        emit(
            {
                "event": "uploaded",
                "file": os.path.basename(path),
                "service": str(service),
                "get_url": get_url,
                "put_url": slot["put"]["url"] if slot else None,
                "put_headers": {h["name"]: h["value"] for h in slot["put"]["headers"]}
                if slot
                else {},
            }
        )
        if args.to is None:  # role "upload": no message
            continue
        message = client.make_message(mto=args.to, mbody=get_url, mtype="chat")
        message["oob"]["url"] = get_url
        message.send()
    # Make sure the messages left before we close the stream.
    await client["xep_0199"].ping(jid=client.boundjid.domain, timeout=10)
    client.disconnect()


async def run_unregister(args):
    client = Client(args.jid, args.password)
    client.register_plugin("xep_0077")
    await client.login(args.host, args.port)
    jid = client.boundjid.bare
    try:
        await client["xep_0077"].cancel_registration(timeout=10)
    except Exception as e:  # IqError, IqTimeout
        raise ClientError(f"{jid}: account removal (XEP-0077) failed: {describe(e)}") from e
    emit({"event": "unregistered", "jid": str(jid)})
    # The server closes the stream ("Account deleted"); let that finish.
    await client.disconnect()
    # After a stream the server closed, slixmpp 1.8.3 leaves its send loop
    # waiting, and asyncio complains at exit ("Task was destroyed but it is
    # pending"): end it here.
    send_loop = getattr(client, "_run_out_filters", None)
    if send_loop is not None and not send_loop.done():
        send_loop.cancel()
        await asyncio.gather(send_loop, return_exceptions=True)


async def download(session, url, exact):
    """GET url; exact=True sends the URL bytes exactly as received."""
    target = yarl.URL(url, encoded=True) if exact else url
    async with session.get(target) as response:
        body = await response.read()
        if response.status != 200:
            raise ClientError(
                f"GET {url} ({'exact' if exact else 'normalised'}) answered "
                f"{response.status}: {body[:500]!r}"
            )
        return {
            "event": "downloaded",
            "url": url,
            "exact_url": exact,
            "request_path": str(response.request_info.url.raw_path),
            "status": response.status,
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "content_type": response.headers.get("Content-Type"),
            "content_length": response.headers.get("Content-Length"),
            "content_disposition": response.headers.get("Content-Disposition"),
        }


async def run_receive(args):
    client = Client(args.jid, args.password)
    urls = asyncio.Queue()

    def on_message(msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            urls.put_nowait((str(msg["from"].bare), msg["body"].strip()))

    client.add_event_handler("message", on_message)
    await client.login(args.host, args.port)
    print("READY", flush=True)

    async with aiohttp.ClientSession(
        headers={"User-Agent": "upslot-interop/slixmpp " + slixmpp.__version__}
    ) as session:
        for _ in range(args.count):
            sender, url = await urls.get()
            if not url.startswith(("http://", "https://")):
                raise ClientError(f"message from {sender} is not a URL: {url!r}")
            for exact in (False, True):
                record = await download(session, url, exact)
                record["from"] = sender
                emit(record)
    client.disconnect()


def describe(error):
    """A one-line description of an exception, XMPP errors included."""
    if isinstance(error, slixmpp.exceptions.IqError):
        return f"XMPP error {error.condition}: {error.text or ''} ({error.iq})"
    if isinstance(error, slixmpp.exceptions.IqTimeout):
        return "XMPP request timed out"
    return f"{type(error).__name__}: {error}"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("role", choices=("send", "receive", "upload", "unregister"))
    parser.add_argument("--jid", required=True, help="bare JID to log in as")
    parser.add_argument("--password", required=True)
    parser.add_argument("--host", default="127.0.0.1", help="XMPP server address")
    parser.add_argument("--port", type=int, required=True, help="XMPP c2s port")
    parser.add_argument("--timeout", type=float, default=60, help="seconds for the whole run")
    parser.add_argument("--to", help="send: JID that receives the URLs")
    parser.add_argument("--file", action="append", default=[], help="send, upload: file to upload")
    parser.add_argument("--count", type=int, default=1, help="receive: messages to wait for")
    parser.add_argument("--debug", action="store_true", help="slixmpp debug log on stderr")
    args = parser.parse_args(argv)
    if args.role == "send" and (not args.to or not args.file):
        parser.error("send needs --to and at least one --file")
    if args.role == "upload" and (args.to or not args.file):
        parser.error("upload needs at least one --file and no --to")
    return args


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Backstop if the event loop itself is stuck: SIGALRM ends the process.
    def hard_timeout(*_):
        os.write(2, b"xmpp_client: error: hard timeout, the event loop was stuck\n")
        os._exit(3)

    signal.signal(signal.SIGALRM, hard_timeout)
    signal.alarm(int(args.timeout) + 10)
    role = {
        "send": run_send,
        "upload": run_send,
        "receive": run_receive,
        "unregister": run_unregister,
    }[args.role]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(role(args), args.timeout))
    except asyncio.TimeoutError:
        print(f"xmpp_client: error: {args.role} timed out after {args.timeout}s", file=sys.stderr)
        return 2
    except ClientError as e:
        print(f"xmpp_client: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # anything unexpected: say what, with a traceback
        logging.exception("unexpected failure")
        print(f"xmpp_client: error: {describe(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
