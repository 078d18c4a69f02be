"""The local CA and server certificate: generated once and kept, valid under strict OpenSSL
verification, and accepted in a real TLS handshake with uvicorn by a client that trusts only
``ca.pem``. A client with default trust is refused."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sandbox import Sandbox
from sandbox.tls import TlsError, TlsFiles, client_env_hint, ensure_certificates

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(cert: x509.Certificate) -> tuple[set[str], set[object]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), set(san.get_values_for_type(x509.IPAddress))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(files: TlsFiles) -> dict[str, bytes]:
    paths = [files.ca_cert, files.ca_cert.with_name("ca-key.pem"), files.cert, files.key]
    return {path.name: path.read_bytes() for path in paths}


def _strict_context(cafile: Path) -> ssl.SSLContext:
    """What the client side sees; VERIFY_X509_STRICT is the default from Python 3.13 on."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


@posix_only
def test_first_call_writes_private_files(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "tls"
    files = ensure_certificates(directory)

    assert files == TlsFiles(
        directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    )
    assert _mode(directory) == 0o700
    assert _mode(directory / "ca-key.pem") == 0o600
    assert _mode(files.key) == 0o600
    assert _mode(files.ca_cert) == 0o644
    assert not list(directory.glob(".*.pem.*")), "no temporary files left behind"


def test_second_call_reuses_identical_bytes(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)
    before = _snapshot(files)

    assert ensure_certificates(tmp_path) == files
    assert _snapshot(files) == before
    assert ensure_certificates(tmp_path, hosts=["LOCALHOST.", "[::1]"]) == files
    assert _snapshot(files) == before, "a subset of the names, spelt differently, is covered"


def test_ca_is_a_path_length_zero_signing_ca(tmp_path: Path) -> None:
    ca = _cert(ensure_certificates(tmp_path).ca_cert)

    assert ca.subject.rfc4514_string() == "CN=chekt-sandbox local CA"
    assert ca.issuer == ca.subject
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey) and ca_key.curve.name == "secp256r1"
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    # as long as one full server certificate needs, not a decade
    assert ca.not_valid_after_utc - ca.not_valid_before_utc <= timedelta(days=397 + 30, hours=1)
    ca.verify_directly_issued_by(ca)


def test_server_certificate_chains_to_the_ca_and_names_the_hosts(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)
    ca, server = _cert(files.ca_cert), _cert(files.cert)

    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert server.signature_hash_algorithm is not None
    ca_key.verify(
        server.signature, server.tbs_certificate_bytes, ec.ECDSA(server.signature_hash_algorithm)
    )
    assert server.issuer == ca.subject

    dns, ips = _sans(server)
    assert dns == {"localhost"}
    assert ips == {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key() == server.public_key()

    now = datetime.now(UTC)
    assert now - timedelta(days=1) < server.not_valid_before_utc < now
    assert server.not_valid_after_utc - server.not_valid_before_utc <= timedelta(days=397)


def test_new_host_regenerates_the_server_certificate_but_keeps_the_ca(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)
    before = _snapshot(files)

    ensure_certificates(tmp_path, hosts=["api.localhost", "127.0.0.7"])  # in its constraints
    after = _snapshot(files)

    assert after["ca.pem"] == before["ca.pem"] and after["ca-key.pem"] == before["ca-key.pem"]
    assert after["server.pem"] != before["server.pem"]
    assert after["server-key.pem"] != before["server-key.pem"]
    dns, ips = _sans(_cert(files.cert))
    assert dns == {"api.localhost", "localhost"}, "earlier names are kept"
    assert ipaddress.ip_address("127.0.0.7") in ips and ipaddress.ip_address("::1") in ips
    _cert(files.cert).verify_directly_issued_by(_cert(files.ca_cert))


def test_missing_server_certificate_is_regenerated(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)
    ca_before = files.ca_cert.read_bytes()
    files.cert.unlink()

    ensure_certificates(tmp_path)

    assert files.ca_cert.read_bytes() == ca_before
    _cert(files.cert).verify_directly_issued_by(_cert(files.ca_cert))


def test_server_certificate_expiring_within_30_days_is_regenerated(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)
    ca = _cert(files.ca_cert)
    ca_key = serialization.load_pem_private_key(
        (tmp_path / "ca-key.pem").read_bytes(), password=None
    )
    server_key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    assert isinstance(server_key, ec.EllipticCurvePrivateKey)
    now = datetime.now(UTC)
    san = _cert(files.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    expiring = (
        x509.CertificateBuilder()
        .subject_name(_cert(files.cert).subject)
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=360))
        .not_valid_after(now + timedelta(days=10))
        .add_extension(san.value, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files.cert.write_bytes(expiring.public_bytes(serialization.Encoding.PEM))

    ensure_certificates(tmp_path)

    renewed = _cert(files.cert)
    assert renewed.not_valid_after_utc > now + timedelta(days=300)
    renewed.verify_directly_issued_by(ca)


def test_ca_without_its_key_is_reported_not_replaced(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)
    ca_before = files.ca_cert.read_bytes()
    (tmp_path / "ca-key.pem").unlink()

    with pytest.raises(TlsError, match=r"delete ca\.pem and ca-key\.pem"):
        ensure_certificates(tmp_path)
    assert files.ca_cert.read_bytes() == ca_before


@pytest.mark.parametrize("host", ["", "bad host", "a..b"])
def test_nonsense_hosts_are_rejected(tmp_path: Path, host: str) -> None:
    with pytest.raises(ValueError, match="host name or IP address"):
        ensure_certificates(tmp_path, hosts=[host])


def test_client_env_hint_names_the_ca_for_each_client(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "with space")
    hint = client_env_hint(files)

    quoted = f"'{files.ca_cert}'"
    for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
        assert f"{variable}={quoted}" in hint
    assert f"--cacert {quoted}" in hint


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello over tls")


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TlsFiles, int]]:
    """A real uvicorn serving the generated certificate on 127.0.0.1, in a thread."""
    files = ensure_certificates(tmp_path_factory.mktemp("tls"))
    config = uvicorn.Config(
        Starlette(routes=[Route("/", _hello)]),
        lifespan="off",
        log_config=None,
        log_level="warning",
        ssl_certfile=str(files.cert),
        ssl_keyfile=str(files.key),
    )
    server = uvicorn.Server(config)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 5
            while not server.started:
                assert thread.is_alive(), "uvicorn exited during start-up"
                assert time.monotonic() < deadline, "uvicorn did not start within 5 s"
                time.sleep(0.01)
            yield files, port
        finally:
            server.should_exit = True
            thread.join(5)
            assert not thread.is_alive(), "uvicorn did not stop"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_handshake_succeeds_for_a_client_that_trusts_the_ca(
    https_server: tuple[TlsFiles, int], host: str
) -> None:
    files, port = https_server
    with httpx.Client(verify=_strict_context(files.ca_cert), trust_env=False) as client:
        response = client.get(f"https://{host}:{port}/", timeout=5)

    assert response.status_code == 200
    assert response.text == "hello over tls"


def test_handshake_fails_for_a_client_with_default_trust(
    https_server: tuple[TlsFiles, int],
) -> None:
    _, port = https_server
    with (
        httpx.Client(trust_env=False) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"https://127.0.0.1:{port}/", timeout=5)


def _forged_leaf(tmp_path: Path, san: x509.GeneralName) -> x509.Certificate:
    """A certificate for ``san`` signed with the CA's own key: what a stolen key could make."""
    ca = _cert(tmp_path / "ca.pem")
    ca_key = serialization.load_pem_private_key((tmp_path / "ca-key.pem").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([san]), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _verify(ca: x509.Certificate, leaf: x509.Certificate, name: x509.GeneralName) -> None:
    from cryptography.x509 import verification

    subject: verification.Subject = (
        verification.DNSName(name.value)
        if isinstance(name, x509.DNSName)
        else verification.IPAddress(name.value)
    )
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([ca]))
        .time(datetime.now(UTC))
        .build_server_verifier(subject)
    )
    verifier.verify(leaf, [])


def test_the_ca_is_name_constrained_to_what_it_serves(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path, hosts=["localhost", "127.0.0.1", "::1", "sandbox.test"])
    ca = _cert(files.ca_cert)
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical and constraints.value.excluded_subtrees is None
    assert set(constraints.value.permitted_subtrees or ()) == {
        x509.DNSName("localhost"),
        x509.DNSName("sandbox.test"),
        x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
    }
    for name in (x509.DNSName("sandbox.test"), x509.IPAddress(ipaddress.ip_address("::1"))):
        _verify(ca, _cert(files.cert), name)  # the real server certificate chains
    inside = x509.DNSName("api.sandbox.test")
    _verify(ca, _forged_leaf(tmp_path, inside), inside)


@pytest.mark.parametrize(
    "outside",
    [x509.DNSName("bank.example"), x509.IPAddress(ipaddress.ip_address("10.0.0.7"))],
)
def test_a_leaf_outside_the_constraints_does_not_verify(
    tmp_path: Path, outside: x509.GeneralName
) -> None:
    from cryptography.x509.verification import VerificationError

    files = ensure_certificates(tmp_path)
    with pytest.raises(VerificationError):
        _verify(_cert(files.ca_cert), _forged_leaf(tmp_path, outside), outside)


def test_a_host_outside_the_constraints_is_reported_not_served(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)
    before = _snapshot(files)
    with pytest.raises(TlsError, match=r"name constraints.*sandbox\.test.*delete ca\.pem"):
        ensure_certificates(tmp_path, hosts=["sandbox.test"])
    assert _snapshot(files) == before


def test_a_tls_sandbox_with_an_idle_client_stops_at_once(tmp_path: Path) -> None:
    """Its own client's keep-alive connection sits idle, as a partner's often does: closed
    politely, TLS waited for the client's close_notify (never sent) past the 10 s the stop
    waits, and the store was then closed under the server's still running shutdown."""
    with Sandbox(tls=True, state_dir=str(tmp_path)) as sandbox:
        assert sandbox.request("GET", "/_sandbox/health").status_code == 200
        started = time.monotonic()
        sandbox.stop()  # raises what failed inside the server, as the exit would
        assert time.monotonic() - started < 5
