"""Example usage:
    python -m bench hostile runs/demo/bundle --json runs/demo/bench/hostile.json
    python -m bench hostile runs/demo/bundle --repo /tmp/lesionlite-main --server-args "" --address-space-mb 8000

The PWA server under hostile input, measured from outside, each measure against a fresh
`python -m pwa` on 127.0.0.1 started with SERVER_ARGS (by default the Pi unit's options, ports
chosen by the OS):

- bombs: the server's peak RSS (VmHWM from /proc) after one decompression bomb of each kind
  (bench/bombs.py), and after eight of them at once, with the statuses they got;
- throughput: good photos (600x450 JPEG) answered per second by --clients clients on a quiet
  server for --seconds, then with --hostile-clients sending bombs, corrupt, oversized and slow
  uploads and camera requests alongside; the ratio of the two;
- slow clients: how long a client that trickles its request (the head, the body, nothing after
  part of the body, the rest after its 413) keeps its connection, up to --hold-cap seconds.

--repo runs the server from another checkout (an older commit, for a before-and-after; its
--server-args must be ones it knows). --address-space-mb runs it under prlimit --as, so that an
old server's bombs cannot take the machine's memory. Loopback only: nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import shlex
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import BenchError, positive_int
from bench.bombs import mpo_bomb, png_bomb, png_text_bomb, progressive_jpeg, sequential_jpeg, truncated, webp_bomb
from bench.photos import synthetic_jpeg
from bench.serving import ServerProcess

UNIT_ARGS = "--camera auto"  # the Pi unit's, but for its fixed ports and LAN address
CONCURRENT = 8  # the server's threads: every one of them decoding a bomb
MB = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="exported bundle folder (runs/NAME/bundle)")
    parser.add_argument("--repo", type=Path, default=None, help="run `python -m pwa` from this checkout")
    parser.add_argument("--server-args", default=UNIT_ARGS, help="options for python -m pwa, one string")
    parser.add_argument("--address-space-mb", type=positive_int, default=None,
                        help="run the server under prlimit --as with this many MB (a safety net)")
    parser.add_argument("--only", nargs="+", choices=["bombs", "throughput", "slow"],
                        default=["bombs", "throughput", "slow"], help="which measures to run")
    parser.add_argument("--clients", type=positive_int, default=2, help="clients sending good photos")
    parser.add_argument("--hostile-clients", type=positive_int, default=4, help="clients sending hostile requests")
    parser.add_argument("--seconds", type=positive_int, default=20, help="length of each throughput run")
    parser.add_argument("--hold-cap", type=positive_int, default=60, help="give up watching a slow client after this")
    parser.add_argument("--json", dest="json_path", type=Path, help="also write the results here as JSON")


@functools.cache
def bombs() -> dict[str, tuple[str, bytes]]:
    """name -> (content type, bytes) of one bomb per kind, each claiming 20-64 million pixels."""
    return {
        "png 8000x8000 grey": ("image/png", png_bomb(8000, 8000)),
        "webp 7900x7900 lossless": ("image/webp", webp_bomb(7900, 7900)),
        "jpeg progressive 8000x8000": ("image/jpeg", progressive_jpeg(8000, 8000)),
        "jpeg scan per component 8000x8000": ("image/jpeg", sequential_jpeg(8000, 8000, 3, separate_scans=True)),
        "jpeg 65000x300": ("image/jpeg", sequential_jpeg(65000, 300)),
        "mpo 6000x6000": ("image/jpeg", mpo_bomb(6000, 6000)),
        "png with 60 MB of text": ("image/png", png_text_bomb()),
    }


@functools.cache
def heaviest_allowed() -> dict[str, tuple[str, bytes]]:
    """The costliest photos the limits let through (edge.preprocess.PixelLimits): what a decode
    slot may really hold."""
    return {
        "allowed: png 2236x2236 grey+alpha": ("image/png", png_bomb(2236, 2236, "LA")),
        "allowed: webp 1732x1732 lossless": ("image/webp", webp_bomb(1732, 1732)),
        "allowed: jpeg progressive 2828x2828": ("image/jpeg", progressive_jpeg(2828, 2828)),
    }


def post(port: int, body: bytes, content_type: str, timeout: float = 300) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/api/predict", body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0  # no answer: reset, or the server died
    finally:
        connection.close()


def start(args: argparse.Namespace) -> ServerProcess:
    prefix = ("prlimit", f"--as={args.address_space_mb * MB}") if args.address_space_mb else ()
    return ServerProcess(str(Path(args.bundle).resolve()), None, None, tuple(shlex.split(args.server_args)),
                         prefix=prefix, cwd=args.repo)


def measure_bomb(args: argparse.Namespace, name: str, content_type: str, data: bytes, count: int) -> dict:
    server = start(args)
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            statuses = list(pool.map(lambda _: post(server.port, data, content_type), range(count)))
        return {"bomb": name, "bytes": len(data), "concurrent": count, "statuses": sorted(statuses),
                "server_alive": server.process.poll() is None, "peak_rss_mb": round(server.peak_rss_mb() or 0, 1)}
    finally:
        server.stop()


def run_bombs(args: argparse.Namespace) -> list[dict]:
    results = []
    print(f"{'bomb':<36}{'KB':>8}{'at once':>9}{'peak RSS MB':>13}  statuses")
    for name, (content_type, data) in (bombs() | heaviest_allowed()).items():
        for count in (1, CONCURRENT):
            results.append(measure_bomb(args, name, content_type, data, count))
            r = results[-1]
            alive = "" if r["server_alive"] else "  (server died)"
            print(f"{name:<36}{len(data) / 1024:>8.0f}{count:>9}{r['peak_rss_mb']:>13.1f}  {r['statuses']}{alive}",
                  flush=True)
    return results


def good_client(port: int, photo: bytes, until: float, answered: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        while time.monotonic() < until:
            connection.request("POST", "/api/predict", body=photo, headers={"Content-Type": "image/jpeg"})
            response = connection.getresponse()
            response.read()
            answered.append(response.status)
            if response.will_close:
                connection.close()
    finally:
        connection.close()


def hostile_requests(photo: bytes) -> list:
    """Callables (port -> status, 0 for no answer, None for the slow upload, which is only timed),
    one per kind of hostile request, sent in turn by each hostile client."""
    made = [(ct, data) for ct, data in (bombs() | heaviest_allowed()).values()]
    made += [("image/jpeg", truncated(photo)), ("image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 500),
             ("image/jpeg", b"\0" * (25 * MB))]
    sends = [lambda port, ct=ct, data=data: post(port, data, ct) for ct, data in made]
    sends.append(lambda port: hold(port, slow_body_head(), b"x", 1000, pause=0.2, cap=30) and None)
    sends.append(lambda port: camera_request(port))
    return sends


def camera_request(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/api/camera/capture")
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


def hostile_client(port: int, sends: list, until: float, offset: int, statuses: list[int]) -> None:
    i = offset
    while time.monotonic() < until:
        status = sends[i % len(sends)](port)
        if status is not None:
            statuses.append(status)
        i += 1


def good_rate(args: argparse.Namespace, photo: bytes, hostile: bool) -> dict:
    """Good photos answered 200 per second over args.seconds, other answers to them, the hostile
    requests' statuses (0: no answer), and the server's peak RSS."""
    sends = hostile_requests(photo) if hostile else []  # made before the clock starts: bombs take seconds
    server = start(args)
    try:
        answered: list[int] = []
        statuses: list[int] = []
        until = time.monotonic() + args.seconds
        threads = [threading.Thread(target=good_client, args=(server.port, photo, until, answered))
                   for _ in range(args.clients)]
        threads += [threading.Thread(target=hostile_client, args=(server.port, sends, until, i, statuses))
                    for i in range(args.hostile_clients if hostile else 0)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ok = answered.count(200)
        return {"per_s": ok / args.seconds, "good_not_200": len(answered) - ok,
                "hostile_statuses": dict(sorted(Counter(statuses).items())),
                "peak_rss_mb": round(server.peak_rss_mb() or 0, 1)}
    finally:
        server.stop()


def run_throughput(args: argparse.Namespace) -> dict:
    photo = synthetic_jpeg(600, 450)
    quiet, loaded = good_rate(args, photo, hostile=False), good_rate(args, photo, hostile=True)
    ratio = round(loaded["per_s"] / quiet["per_s"], 2) if quiet["per_s"] else None
    result = {"clients": args.clients, "hostile_clients": args.hostile_clients, "seconds": args.seconds,
              "quiet": quiet, "hostile": loaded, "ratio": ratio}
    print(f"good photos/s: quiet {quiet['per_s']:.2f}, with {args.hostile_clients} hostile clients "
          f"{loaded['per_s']:.2f}, ratio {ratio}; good photos not answered 200: "
          f"{quiet['good_not_200'] + loaded['good_not_200']}; hostile answers {loaded['hostile_statuses']} "
          f"(0: none); peak RSS quiet {quiet['peak_rss_mb']} MB, hostile {loaded['peak_rss_mb']} MB", flush=True)
    return result


def slow_body_head(length: int = MB) -> bytes:
    return (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def hold(port: int, head: bytes, chunk: bytes, count: int, pause: float, cap: float) -> float:
    """Seconds from connecting until the server closes the connection (after an answer or not),
    while the client sends `head`, then `chunk` `count` times, `pause` seconds apart; `cap` if never."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=cap) as sock:
        try:
            sock.sendall(head)
            for _ in range(count):
                if wait_closed(sock, pause):
                    return time.monotonic() - started
                if time.monotonic() - started > cap:
                    return cap
                sock.sendall(chunk)
            return time.monotonic() - started if wait_closed(sock, cap - (time.monotonic() - started)) else cap
        except OSError:  # reset while sending: the server let go
            return time.monotonic() - started


def wait_closed(sock: socket.socket, seconds: float) -> bool:
    """True once the server has closed (EOF or reset) within `seconds`; answers before that are read."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


def run_slow(args: argparse.Namespace) -> dict:
    cap = args.hold_cap
    cases = {  # (head, chunk, how many chunks, pause between them)
        "head, a byte every 1 s": (b"GET /healthz HTTP/1.1\r\n", b"X", 10_000, 1.0),
        "body, a byte every 1 s": (slow_body_head(), b"x", 10_000, 1.0),
        "part of a body, then silence": (slow_body_head() + b"x" * 100, b"", 0, 0.0),
        "after its 413, 64 KB every 0.5 s": (slow_body_head(25 * MB), b"\0" * 65536, 400, 0.5),
    }
    server = start(args)
    try:
        with ThreadPoolExecutor(max_workers=len(cases)) as pool:
            held = dict(zip(cases, pool.map(lambda c: hold(server.port, *c, cap=cap), cases.values()), strict=True))
    finally:
        server.stop()
    for name, seconds in held.items():
        print(f"slow client, {name}: held {'>= ' if seconds >= cap else ''}{seconds:.1f} s", flush=True)
    return {name: round(seconds, 1) for name, seconds in held.items()} | {"cap_s": cap}


def run(args: argparse.Namespace) -> int:
    if args.repo is not None and not (args.repo / "pwa" / "__main__.py").is_file():
        raise BenchError(f"{args.repo} is not a LesionLite checkout (no pwa/__main__.py)")
    results: dict = {"server_args": args.server_args, "repo": str(args.repo or "."),
                     "address_space_mb": args.address_space_mb}
    for part, measure in (("bombs", run_bombs), ("throughput", run_throughput), ("slow", run_slow)):
        if part in args.only:
            results[part] = measure(args)
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps(results, indent=2))
    return 0
