"""JSON from a monitoring port, retried while the monitor binds (and, when
asked, while `/healthz`-style 503s say workers are still booting)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


def get_json(port: int, path: str, timeout: float = 10.0, *, retry_503: bool = False) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if not (retry_503 and e.code == 503) or time.monotonic() > deadline:
                raise
        except (ConnectionError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)
