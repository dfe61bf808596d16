"""The documentation's pictures, produced by the shipped examples: the review console's escalation page.

Runs `examples/inbox.py` into a temporary database (four support-desk questions, three escalate),
serves the review console over that inbox on a loopback port, claims one escalation as a reviewer
would, and screenshots its page in headless Chromium (Debian's `/usr/bin/chromium`, driven by
Playwright) into `docs/console.png`.

    python docs/pictures.py                      # writes docs/console.png
    python docs/pictures.py --out /tmp/c.png     # anywhere else

Needs the `console` and `test` extras (Starlette, uvicorn, Playwright) and Chromium at
`/usr/bin/chromium` (`apt-get install chromium`); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import importlib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TOKEN = "docs-pictures-token-0123456789"
THREAD = "warranty"
"""The escalation shown: the support desk's draft about the warranty, which cites no policy."""


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve the ASGI `app` with uvicorn in a thread on a free loopback port; stop it afterwards."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", ws="none", http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            msg = "the console did not start"
            raise RuntimeError(msg)
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def console_picture(out: Path) -> Path:
    """Run examples/inbox.py, serve the console over its inbox, and screenshot one escalation into `out`."""
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.store.sqlite import SqliteStore
    from playwright.sync_api import expect, sync_playwright

    from reliable_graph import EscalationInbox
    from reliable_graph.console import create_app

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "desk.sqlite"
        subprocess.run([sys.executable, str(ROOT / "examples" / "inbox.py"), str(db)], check=True, cwd=ROOT)
        sys.path.insert(0, str(ROOT))
        try:
            builder = importlib.import_module("examples.inbox").builder
        finally:
            sys.path.remove(str(ROOT))
        saver_conn = sqlite3.connect(db, check_same_thread=False)
        store_conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        with closing(saver_conn), closing(store_conn):
            store = SqliteStore(store_conn)
            graph = builder().compile(checkpointer=SqliteSaver(saver_conn), store=store)
            inbox = EscalationInbox(store, graph=graph)
            [item] = inbox.list(thread_id=THREAD)
            with served(create_app(inbox, token=TOKEN)) as base, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
                try:
                    page = browser.new_page(viewport={"width": 1200, "height": 900})
                    page.set_default_timeout(15_000)
                    page.goto(f"{base}/escalations/{item.id}?token={TOKEN}")
                    page.locator("#claim input[name=reviewer]").fill("ana")
                    page.locator("#claim button").click()
                    expect(page.locator(".flash")).to_contain_text("Claimed")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(out), full_page=True)
                finally:
                    browser.close()
    return out


def main(argv: list[str] | None = None) -> None:
    """Write the pictures (today: the console's escalation page)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console.png", help="where to write the PNG")
    args = parser.parse_args(argv)
    print(console_picture(args.out))


if __name__ == "__main__":
    main()
