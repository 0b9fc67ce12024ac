"""Puts this Python process on a simulated date: ``scripts/on-date`` puts this folder on
``PYTHONPATH`` with ``LIVCR_TODAY`` set, so every Python process it starts (pytest, the bot,
``livcr demo`` and the Synapse homeserver it runs, member clients) starts its wall clock at that
moment and lets it tick from there (time-machine; the monotonic clock is left alone, so sleeps
and timeouts are real).

Used only to prove that nothing depends on today's date (issue 12); never in production.
"""

from __future__ import annotations

import os

_TODAY = os.environ.get("LIVCR_TODAY")
if _TODAY:
    from datetime import datetime

    import time_machine

    _destination = datetime.fromisoformat(_TODAY)
    if _destination.tzinfo is None:
        raise SystemExit(f"LIVCR_TODAY needs a UTC offset (2027-03-28T01:30:00+01:00): {_TODAY}")
    time_machine.travel(_destination, tick=True).start()
