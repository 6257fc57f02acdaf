"""A bounded load test of a local endpoint: at most `requests` requests and `max_seconds` seconds, localhost only."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from reid.errors import ReidError

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class LoadResult:
    sent: int
    ok: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    rps: float

    def line(self) -> str:
        return (f"{self.ok}/{self.sent} ok in {self.seconds:.1f} s: p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} ms, "
                f"{self.rps:.2f} requests/s")


def post(url: str, body: bytes, timeout: float = 60.0) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def run_load(url: str, payload: dict, *, requests: int = 50, concurrency: int = 4, max_seconds: float = 60.0
             ) -> LoadResult:
    """Send `payload` up to `requests` times from `concurrency` threads, stopping at `max_seconds`."""
    if urlparse(url).hostname not in LOCAL_HOSTS:
        raise ReidError(f"the load test only targets localhost, not {url}")
    if requests < 1 or concurrency < 1:
        raise ReidError("the load test needs requests >= 1 and concurrency >= 1")
    body = json.dumps(payload).encode()
    deadline = time.monotonic() + max_seconds
    latencies: list[float] = []
    failures = [0]

    def one(_: int) -> None:
        if time.monotonic() > deadline:
            return
        t0 = time.perf_counter()
        try:
            status, _ = post(url, body, timeout=max(1.0, deadline - time.monotonic() + 5))
        except (OSError, ValueError):
            status = -1
        if status == 200:
            latencies.append(time.perf_counter() - t0)
        else:
            failures[0] += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - start
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return LoadResult(sent=len(latencies) + failures[0], ok=len(latencies), errors=failures[0], seconds=seconds,
                      p50_ms=float(np.percentile(lat, 50)), p99_ms=float(np.percentile(lat, 99)),
                      rps=len(latencies) / seconds if seconds > 0 else 0.0)


def frames_payload(frames: np.ndarray, top_k: int = 10) -> dict:
    """JSON body for uint8 frames [T, H, W, 3]: each frame as base64 JPEG."""
    import base64
    import io

    from PIL import Image

    out = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=90)
        out.append(base64.b64encode(buf.getvalue()).decode())
    return {"frames": out, "top_k": top_k}


def video_payload(video: str | Path, top_k: int = 10) -> dict:
    """JSON body for a video file: its bytes as base64."""
    import base64

    return {"video": base64.b64encode(Path(video).read_bytes()).decode(), "top_k": top_k}
