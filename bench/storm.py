"""The alarm-storm scenario (1,000 alarm.created at 100/s, real time) against the example
partner service: wall time and delivery latency percentiles, as ``make bench`` reports them."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from partner_app.app import PartnerConfig, create_partner_app  # noqa: E402

from sandbox.scenario import Runner, load, sandbox_for, summary  # noqa: E402

SECRET = "whsec_bench_storm_0123456789abcdef"


def main() -> int:
    scenario = load(ROOT / "scenarios" / "alarm-storm.yaml")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with sandbox_for(scenario) as sandbox:
        sandbox.register_client(
            client_id="storm-partner",
            kind="platform_partner",
            dealer_ids=[1001, 1002, 1003],
            public_key=key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
            key_id="storm-1",
        )
        app = create_partner_app(
            PartnerConfig(
                chekt_url=sandbox.url,
                webhook_secret=SECRET,
                client_id="storm-partner",
                private_key_pem=key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
                key_id="storm-1",
                clock=sandbox.clock.now,
            )
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        try:
            started = time.perf_counter()
            report = Runner(
                sandbox,
                callback=f"http://127.0.0.1:{sock.getsockname()[1]}/chekt/webhooks",
                secret=SECRET,
            ).run(scenario)
            wall = time.perf_counter() - started
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
    print(summary(report))
    print(f"\nalarm storm wall time: {wall:.1f} s (1,000 alarms at 100/s, then until all landed)")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
