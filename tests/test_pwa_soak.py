"""The soak test: the real server, started as the Pi unit starts it and held to a memory budget like
the unit's, under concurrent good and hostile clients for SOAK_SECONDS.

The server is edge/pi/lesionlite.service's own ExecStart (its options read from the unit file),
with the test bundle and OS-chosen ports. The unit caps it with systemd's MemoryMax=640M; neither
`systemd-run --scope -p MemoryMax=` nor `systemd-run --user` runs here (no systemd as PID 1, no
user bus), and prlimit's address-space cap cannot stand in for it: the idle server already maps
1.6 GB of address space for 90 MB resident (allocator arenas, thread stacks). So once the server
serves, prlimit(2) (resource.prlimit, what the prlimit command calls) caps its writable memory
(RLIMIT_DATA) at what it holds then plus MEMORY_MAX_MB minus its resident size: an allocation past
that budget fails, and the failure would surface as a 5xx or a dead server. Writable memory is
counted whether touched or not, so this is stricter than the unit's cap on resident memory.

Asserted: no answer is a 5xx; every hostile request gets its own 4xx and message; good photos
keep being answered (at least GOOD_PHOTOS_FLOOR); /healthz answers throughout; the server's peak
RSS (VmHWM) stays under PEAK_RSS_BOUND_MB; the server is alive at the end. No timings.
"""

from __future__ import annotations

import http.client
import itertools
import json
import resource
import shlex
import socket
import threading
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest

from bench.bombs import png_bomb, png_text_bomb, progressive_jpeg, sequential_jpeg, truncated, webp_bomb
from tests.pwa_helpers import (
    REPO,
    corrupt_png,
    gif_bytes,
    heic_header,
    jpeg_bytes,
    running_server,
    synthetic_photo,
    tcp_forwarder,
)

SOAK_SECONDS = 40
MEMORY_MAX_MB = 640  # edge/pi/lesionlite.service MemoryMax
# The stated bound: ~90 MB idle + a decode slot per core (4 on a Pi or a CI runner) x ~64 MB, and
# the soak's bodies are small; docs/pi-kiosk.md has the design bound with full bodies (~380 MB on
# 2 cores) and the measured peaks (230 MB here). A decompression bomb decoded breaks it at once.
PEAK_RSS_BOUND_MB = 400
KEPT_BOUND_MB = 64  # resident memory left above idle after the soak: less than one heavy decode
GOOD_PHOTOS_FLOOR = 20  # good photos answered 200 during the soak (a stalled server answers none)
HEALTH_FLOOR = 20  # /healthz polls answered 200, one every half second at most
UNIT = REPO / "edge" / "pi" / "lesionlite.service"
MB = 1024 * 1024

PNG_OVER = "The photo is {}x{} pixels, over the limit of 5,000,000 for a PNG: send a smaller photo."
CORRUPT = "The photo is corrupt or truncated: take or send the photo again."


def unit_options() -> list[str]:
    """The unit's `python -m pwa` options but --bundle (running_server gives the test's), with the
    ports the OS chooses (a fixed port could be taken on a shared machine)."""
    (exec_start,) = [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith("ExecStart=")]
    words = shlex.split(exec_start)
    options = words[words.index("pwa") + 1:]
    options = options[:options.index("--bundle")] + options[options.index("--bundle") + 2:]
    for port in ("--port", "--kiosk-port"):
        options[options.index(port) + 1] = "0"
    return options


def hostile_cases(photo: bytes) -> list[tuple[str, str, bytes, int, str | None]]:
    """(name, content type, body, expected status, expected message) for each hostile upload."""
    return [
        ("png-bomb", "image/png", png_bomb(8000, 8000), 413, PNG_OVER.format(8000, 8000)),
        ("png-rgba-bomb", "image/png", png_bomb(4000, 4000, "RGBA"), 413, PNG_OVER.format(4000, 4000)),
        ("webp-bomb", "image/webp", webp_bomb(4000, 4000), 413,
         "The photo is 4000x4000 pixels, over the limit of 3,000,000 for a WebP: send a smaller photo."),
        ("progressive-jpeg-bomb", "image/jpeg", progressive_jpeg(4000, 3000), 413,
         "The photo is 4000x3000 pixels, over the limit of 8,000,000 for a progressive JPEG: send a smaller photo."),
        ("multi-scan-jpeg-bomb", "image/jpeg", sequential_jpeg(8000, 8000, 3, separate_scans=True), 413,
         "The photo is 8000x8000 pixels, over the limit of 8,000,000 for a multi-scan JPEG: send a smaller photo."),
        ("jpeg-bomb", "image/jpeg", sequential_jpeg(9000, 8000), 413,
         "The photo is 9000x8000 pixels, over the limit of 64,000,000 for a JPEG: send a smaller photo."),
        ("thin-jpeg-bomb", "image/jpeg", sequential_jpeg(65000, 300), 413, "The photo is 65000x300 pixels, over the "
         "limit of 8,000,000 for a JPEG this long and narrow: send a smaller photo."),
        ("far-too-many", "image/jpeg", sequential_jpeg(12000, 11000), 413,
         "The photo has far too many pixels (limit 64,000,000): send a smaller photo."),
        ("png-text-bomb", "image/png", png_text_bomb(), 400, CORRUPT),
        ("truncated-jpeg", "image/jpeg", truncated(photo), 400, CORRUPT),
        ("corrupt-png", "image/png", corrupt_png(photo), 400, CORRUPT),
        ("gif", "image/gif", gif_bytes(), 415, "Content type image/gif is not a photo: send a JPEG or PNG."),
        ("heic", "image/jpeg", heic_header(), 415, "The photo is HEIC/HEIF, which LesionLite cannot read: send a "
         "JPEG or PNG (on an iPhone: Settings > Camera > Formats > Most Compatible)."),
        ("oversized", "image/jpeg", photo + b"\0" * (25 * MB), 413,
         "The upload is over the limit of 20 MB: send a smaller photo."),
    ]


def heavy_allowed() -> list[tuple[str, str, bytes]]:
    """The costliest photos the limits let through: they fill the decode slots' memory."""
    return [("heavy-png", "image/png", png_bomb(2236, 2236, "LA")),
            ("heavy-webp", "image/webp", webp_bomb(1732, 1732)),
            ("heavy-progressive-jpeg", "image/jpeg", progressive_jpeg(2828, 2828))]


class Log:
    """Every answer the clients got, thread-safe: (client kind, name, status, JSON body or None)."""

    def __init__(self):
        self.answers: list[tuple[str, str, int, dict | None]] = []
        self._lock = threading.Lock()

    def add(self, kind: str, name: str, status: int, body: dict | None) -> None:
        with self._lock:
            self.answers.append((kind, name, status, body))

    def of(self, kind: str) -> list[tuple[str, int, dict | None]]:
        with self._lock:
            return [(name, status, body) for k, name, status, body in self.answers if k == kind]


def ask(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, JSON body or None) of one request on a fresh connection."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        is_json = response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(data) if is_json else None
    finally:
        connection.close()


def slow_upload(url: str, photo: bytes) -> tuple[int, dict | None]:
    """A body trickled a byte at a time: the server answers 408 at its deadline (30 s by default)."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=120) as sock:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                     + f"Content-Length: {len(photo)}\r\n\r\n".encode())
        answer = b""
        for i in range(len(photo)):
            try:
                sock.sendall(photo[i:i + 1])
            except OSError:
                break
            sock.settimeout(0.2)
            try:
                if chunk := sock.recv(65536):
                    answer = chunk
                    break
            except TimeoutError:
                continue
        sock.settimeout(30)
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def run_until(stop: threading.Event, work) -> None:
    while not stop.is_set():
        work()


@pytest.fixture(scope="module")
def soak(random_bundle, tmp_path_factory):
    """Run the soak once; yields (log, server, peak RSS MB, the hostile cases)."""
    photo = jpeg_bytes(synthetic_photo(4))
    cases, heavy = hostile_cases(photo), heavy_allowed()
    log, stop = Log(), threading.Event()
    with running_server(random_bundle, tmp_path_factory.mktemp("soak"), *unit_options()) as server:
        cap_memory(server.process.pid)
        idle_mb = status_mb(server.process.pid, "VmRSS")
        phone_port = urllib.parse.urlsplit(server.base_url).port
        with tcp_forwarder(("127.0.0.1", phone_port)) as forwarded:
            workers = clients(server, forwarded, photo, cases, heavy, log, stop)
            for worker in workers:
                worker.start()
            stop.wait(SOAK_SECONDS)
            stop.set()
            for worker in workers:
                worker.join(timeout=180)
        alive = server.process.poll() is None
        memory = {key: status_mb(server.process.pid, key) for key in ("VmHWM", "VmRSS")}
        yield {"log": log, "alive": alive, "peak_mb": memory["VmHWM"], "kept_mb": memory["VmRSS"] - idle_mb,
               "stderr": server.stderr(), "cases": cases}


def clients(server, forwarded, photo, cases, heavy, log, stop) -> list[threading.Thread]:
    """Two good clients, two hostile ones going through every case, three heavy-photo senders, a
    camera prober (through the forwarder, and at the kiosk's listener under another name), a
    /healthz poller, and one slow upload."""
    def post(kind: str, case) -> None:
        name, content_type, body = case[:3]
        log.add(kind, name, *ask(server.base_url, "POST", "/api/predict", body, {"Content-Type": content_type}))

    def camera() -> None:
        log.add("camera-forwarded", "capture", *ask(forwarded, "POST", "/api/camera/capture"))
        log.add("camera-rebound", "capture", *ask(server.kiosk_url, "POST", "/api/camera/capture",
                                                   headers={"Host": "attacker.example"}))
        stop.wait(0.5)

    def health() -> None:
        log.add("health", "healthz", *ask(server.base_url, "GET", "/healthz"))
        stop.wait(0.5)

    good = ("photo", "image/jpeg", photo)
    first, second, heavy_ones = itertools.cycle(cases), itertools.cycle(cases[::-1]), itertools.cycle(heavy)
    works = [lambda: post("good", good), lambda: post("good", good), lambda: post("hostile", next(first)),
             lambda: post("hostile", next(second)), lambda: post("heavy", next(heavy_ones)),
             lambda: post("heavy", next(heavy_ones)), lambda: post("heavy", next(heavy_ones)), camera, health]
    threads = [threading.Thread(target=run_until, args=(stop, work), daemon=True) for work in works]
    # One upload trickled for the whole of the server's 30 s deadline (SOAK_SECONDS is longer).
    slow = threading.Thread(target=lambda: log.add("slow", "slow-upload", *slow_upload(server.base_url, photo[:4000])),
                            daemon=True)
    return [*threads, slow]


def cap_memory(pid: int) -> None:
    """RLIMIT_DATA: what the server holds now plus MEMORY_MAX_MB minus its resident size."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    data_kb, rss_kb = (int(status[key].split()[0]) for key in ("VmData", "VmRSS"))
    budget = (data_kb + MEMORY_MAX_MB * 1024 - rss_kb) * 1024
    resource.prlimit(pid, resource.RLIMIT_DATA, (budget, budget))


def status_mb(pid: int, key: str) -> float:
    """A memory figure of /proc/PID/status (VmHWM: the resident high-water mark; VmRSS: now)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(f"{key}:"))) / 1024


def test_no_answer_is_a_server_error_and_the_server_lives(soak):
    statuses = Counter(status for answer in soak["log"].answers for status in [answer[2]])
    assert not [s for s in statuses if s >= 500], statuses
    assert soak["alive"], soak["stderr"][-2000:]
    assert "Traceback" not in soak["stderr"]


def test_every_hostile_request_gets_its_own_refusal(soak):
    expected = {name: (status, {"error": message}) for name, _, _, status, message in soak["cases"]}
    answers = soak["log"].of("hostile")
    assert {name for name, _, _ in answers} == set(expected), "every kind was sent at least once"
    for name, status, body in answers:
        assert (status, body) == expected[name], name
    for name, status, body in soak["log"].of("slow"):
        assert (status, body) == (408, {
            "error": "The upload did not arrive within 30 s: send the photo again from nearer the Wi-Fi."}), name


def test_the_camera_cannot_be_reached_from_the_phones_listener_or_by_another_name(soak):
    forwarded, rebound = soak["log"].of("camera-forwarded"), soak["log"].of("camera-rebound")
    assert forwarded and rebound
    assert {(status, body["error"]) for _, status, body in forwarded} == {
        (404, "No API endpoint /api/camera/capture: see /api/openapi.json.")}
    assert {status for _, status, _ in rebound} == {403}


def test_good_photos_and_health_checks_keep_being_answered(soak):
    good, health, heavy = soak["log"].of("good"), soak["log"].of("health"), soak["log"].of("heavy")
    assert {status for _, status, _ in good} == {200} and len(good) >= GOOD_PHOTOS_FLOOR, len(good)
    assert {status for _, status, _ in health} == {200} and len(health) >= HEALTH_FLOOR, len(health)
    assert {status for _, status, _ in heavy} == {200} and len(heavy) >= len(heavy_allowed())


def test_peak_memory_stays_under_the_stated_bound_and_is_given_back(soak):
    assert soak["peak_mb"] < PEAK_RSS_BOUND_MB, soak["peak_mb"]
    # Once the clients stop, what the decodes took is free again (pwa/decoding.py return_freed_memory).
    assert soak["kept_mb"] < KEPT_BOUND_MB, soak["kept_mb"]
