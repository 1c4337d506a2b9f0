"""The idle culler as the workshop's hub runs it: jupyterhub_idle_culler, which stops at once
when the hub stops it.

Why not ``python -m jupyterhub_idle_culler`` directly: when the hub shuts down it stops each
service with SIGINT and waits up to 30 s before sending SIGTERM (JupyterHub's service spawner,
``interrupt_timeout``, which no config reaches), and only then stops the learners' servers. The
culler relies on Python's default SIGINT handler (KeyboardInterrupt), which Python installs only
when SIGINT is not ignored at start-up. A process started in the background by a non-interactive
shell (``make hub &``, ``nohup``, a CI step, a test harness run with ``&``) ignores SIGINT, and
its children inherit that: the culler then ignored the hub's SIGINT and shutdown spent 27-33 s in
"Cleaning up 1 services" (32.1 s measured here, against 0.6 s from a foreground shell).

Here the culler's event loop handles SIGINT and SIGTERM itself (asyncio's add_signal_handler,
which installs a handler whatever the inherited disposition, and wakes the loop through its
self-pipe, so a signal that lands between two callbacks is not left pending until the next
cull): on either signal the loop stops and the process exits.

The hub runs this file by path, with the culler's own command-line options:

    python classroom/culler.py --timeout=3600 --cull-every=60
"""

from __future__ import annotations

import asyncio
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    from jupyterhub_idle_culler import IdleCuller

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # tornado's IOLoop.current() wraps this loop
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, loop.stop)
    IdleCuller.launch_instance(argv=sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
