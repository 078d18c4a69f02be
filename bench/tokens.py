"""Token endpoint throughput: client credentials with a secret, and an RS256 assertion
exchange (targets on this machine: >= 500/s and >= 300/s).

The sandbox runs as ``chekt-sandbox serve`` pinned to core 0; the load comes from an aiohttp
client pinned to core 1. Assertions are signed before the clock starts (each needs a fresh
``jti``), so the figure is the server's, not the client's signing speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

BIN = Path(sys.executable).parent
CONCURRENCY = 16
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TARGETS = {"client credentials (secret)": 500.0, "assertion exchange (RS256)": 300.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(config: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEKT_SANDBOX_")}
    command = [
        "taskset",
        "-c",
        "0",
        str(BIN / "chekt-sandbox"),
        "serve",
        "--port",
        str(port),
        "--db",
        ":memory:",
        "--config",
        str(config),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1).is_success:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the sandbox did not start")


async def fire(url: str, forms: list[dict[str, str]]) -> tuple[float, int]:
    """Send every form, CONCURRENCY at a time; returns (seconds, non-200 answers)."""
    errors = 0
    queue = iter(forms)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:

        async def worker() -> None:
            nonlocal errors
            for form in queue:
                async with http.post(url, data=form) as response:
                    await response.read()
                    errors += response.status != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    count = 1000 if args.quick else 4000
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        pem_path = Path(tmp) / "bench-public.pem"
        pem_path.write_text(public)
        config.write_text(
            "clients:\n"
            "  - client_id: bench-secret\n    client_secret: bench-secret-0123456789\n"
            "    dealer_ids: [1001]\n"
            f"  - client_id: bench-assertion\n    public_key_file: {pem_path}\n"
            "    key_id: bench-1\n    dealer_ids: [1001]\n"
        )
        port = free_port()
        process = start_sandbox(config, port)
        try:
            url = f"http://127.0.0.1:{port}/oauth/token"
            secret_forms = [
                {
                    "grant_type": "client_credentials",
                    "client_id": "bench-secret",
                    "client_secret": "bench-secret-0123456789",
                }
            ] * count
            now = int(time.time())
            assertion_forms = [
                {
                    "grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": jwt.encode(
                        {
                            "iss": "bench-assertion",
                            "sub": "bench-assertion",
                            "aud": f"http://127.0.0.1:{port}/",
                            "iat": now,
                            "exp": now + 300,
                            "jti": str(uuid.uuid4()),
                        },
                        key,
                        algorithm="RS256",
                        headers={"kid": "bench-1"},
                    ),
                }
                for _ in range(count)
            ]
            asyncio.run(fire(url, secret_forms[:200]))  # warm-up
            rows = []
            for label, forms in (
                ("client credentials (secret)", secret_forms),
                ("assertion exchange (RS256)", assertion_forms),
            ):
                seconds, errors = asyncio.run(fire(url, forms))
                rows.append((label, len(forms) / seconds, errors))
        finally:
            process.terminate()
            process.wait(timeout=10)
    print(
        f"\nToken endpoint, {count} requests each, {CONCURRENCY} concurrent "
        "(server on core 0, client on core 1)\n"
    )
    print(f"{'grant':<30} {'tokens/s':>10} {'errors':>7} {'target':>8}  verdict")
    ok = True
    for label, rate, errors in rows:
        passed = rate >= TARGETS[label] and errors == 0
        ok &= passed
        print(
            f"{label:<30} {rate:>10,.0f} {errors:>7} {TARGETS[label]:>8,.0f}  "
            f"{'PASS' if passed else 'FAIL'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
