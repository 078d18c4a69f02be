"""``ensure_certificates(directory)``: a local CA and a server certificate signed by it, so the
sandbox can serve https like the real CHeKT API without a public CA.

The files are generated once and kept. Clients trust ``ca.pem`` once (see
``client_env_hint``) and that trust survives restarts. Only the server certificate is ever
replaced on its own: when it is missing, about to expire, or does not name a host the sandbox
must answer on. The new one is signed by the same CA, so nobody has to trust anything again.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sandbox.errors import SandboxError

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_NAME = "chekt-sandbox local CA"
SERVER_NAME = "chekt-sandbox server"
SERVER_LIFETIME = timedelta(days=397)  # the longest that browsers and Apple clients accept
BACKDATE = timedelta(hours=1)  # so a client whose clock is a little behind still accepts it
RENEW_BEFORE = timedelta(days=30)
# long enough for one full server certificate and no longer: a stolen CA key is not a decade
CA_LIFETIME = SERVER_LIFETIME + RENEW_BEFORE
# name constraints: whatever else the CA is made for, it may vouch for loopback
LOOPBACK_SUBTREES: tuple[x509.GeneralName, ...] = (
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
    x509.IPAddress(ipaddress.ip_network("::1/128")),
)

CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.pem", "ca-key.pem", "server.pem", "server-key.pem"

_Host: TypeAlias = str | ipaddress.IPv4Address | ipaddress.IPv6Address
_SigningKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class TlsError(SandboxError, RuntimeError):
    """The kept CA cannot be used. We never replace it silently, because clients trust it."""


@dataclass(frozen=True)
class TlsFiles:
    """Absolute paths of PEM files. Give ``cert`` and ``key`` to uvicorn, and ``ca_cert`` to
    clients."""

    ca_cert: Path
    cert: Path
    key: Path


def ensure_certificates(directory: Path, hosts: Sequence[str] = DEFAULT_HOSTS) -> TlsFiles:
    """Return usable TLS files under ``directory``, generating only what is missing or stale.

    Safe to call on every start. A replacement server certificate also keeps the names the old
    one had, so alternating between two configurations does not regenerate it each time.
    Raises ``ValueError`` for a host that is neither a DNS name nor an IP address, and
    ``TlsError`` if ``ca.pem`` exists but its key is missing, unreadable or expiring.
    """
    wanted = _parse_hosts([hosts] if isinstance(hosts, str) else hosts)
    directory = Path(directory).absolute()
    files = TlsFiles(directory / CA_CERT, directory / SERVER_CERT, directory / SERVER_KEY)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.now(UTC)
    with _locked(directory):
        ca_cert, ca_key = _load_or_create_ca(files.ca_cert, directory / CA_KEY, now, wanted)
        _check_permitted(ca_cert, wanted)
        current = _load_server(files, ca_cert)
        if current is None or not _still_good(current, wanted, now):
            kept = {h for h in _hosts_of(current) if _permits(ca_cert, h)} if current else set()
            names = wanted + sorted(kept - set(wanted), key=str)
            _create_server(files, ca_cert, ca_key, names, now)
    return files


def client_env_hint(files: TlsFiles) -> str:
    """Lines to print next to the https URL, so a user knows how to make a client trust us."""
    ca = shlex.quote(str(files.ca_cert))
    return "\n".join(
        [
            f"TLS: the certificate is signed by the sandbox's local CA {ca}. To trust it:",
            f"  export SSL_CERT_FILE={ca}        # Python ssl/httpx/aiohttp, OpenSSL, curl",
            f"  export REQUESTS_CA_BUNDLE={ca}   # Python requests",
            f"  export NODE_EXTRA_CA_CERTS={ca}  # Node.js",
            f"  (or per request: curl --cacert {ca} ...)",
            "  SSL_CERT_FILE replaces the default CA bundle in that shell.",
        ]
    )


def _parse_hosts(hosts: Iterable[str]) -> list[_Host]:
    parsed: list[_Host] = []
    for host in hosts:
        name = _parse_host(host)
        if name not in parsed:
            parsed.append(name)
    if not parsed:
        raise ValueError("a server certificate needs at least one host name or IP address")
    return parsed


def _parse_host(host: str) -> _Host:
    """``"::1"``, ``"[::1]"`` and ``"127.0.0.1"`` become IP SAN entries. A name is put into
    canonical form (lower case, no trailing dot, IDNA), so the coverage check compares like
    with like."""
    text = host.strip().removeprefix("[").removesuffix("]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    try:
        name = text.lower().rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        name = ""
    if not name or " " in name:
        raise ValueError(f"not a host name or IP address: {host!r}")
    return name


def _hosts_of(cert: x509.Certificate) -> set[_Host]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names: set[_Host] = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    for ip in san.get_values_for_type(x509.IPAddress):
        if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
            names.add(ip)
    return names


def _subtrees(hosts: Iterable[_Host]) -> list[x509.GeneralName]:
    """Loopback plus ``hosts`` as permitted subtrees (a DNS subtree covers subdomains too)."""
    trees = list(LOOPBACK_SUBTREES)
    for host in hosts:
        if not _covered(trees, host):
            name = host if isinstance(host, str) else ipaddress.ip_network(host)
            trees.append(x509.DNSName(name) if isinstance(name, str) else x509.IPAddress(name))
    return trees


def _covered(trees: Iterable[x509.GeneralName], host: _Host) -> bool:
    for tree in trees:
        if isinstance(tree, x509.DNSName) and isinstance(host, str):
            if host == tree.value or host.endswith("." + tree.value):
                return True
        elif isinstance(tree, x509.IPAddress) and not isinstance(host, str):
            network = tree.value
            if isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network) and (
                network.version == host.version and host in network
            ):
                return True
    return False


def _permits(ca: x509.Certificate, host: _Host) -> bool:
    """Whether the CA's name constraints allow a certificate for ``host`` (a CA made before
    they existed has none, and allows anything)."""
    try:
        constraints = ca.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return True
    return _covered(constraints.permitted_subtrees or (), host)


def _check_permitted(ca: x509.Certificate, hosts: list[_Host]) -> None:
    outside = [str(h) for h in hosts if not _permits(ca, h)]
    if outside:
        raise TlsError(
            f"the local CA {CA_CERT} may only vouch for the names it was made for (its name "
            f"constraints), not {', '.join(outside)}; delete {CA_CERT} and {CA_KEY} to create a "
            f"CA for these names too (clients then have to trust the new {CA_CERT})"
        )


def _load_or_create_ca(
    cert_path: Path, key_path: Path, now: datetime, hosts: list[_Host]
) -> tuple[x509.Certificate, _SigningKey]:
    """The CA is created only when ``ca.pem`` is absent, constrained to loopback and
    ``hosts``. It is written after its key, so a crash in between only causes a fresh start."""
    if not cert_path.exists():
        return _create_ca(cert_path, key_path, now, hosts)
    reset = (
        f"delete {CA_CERT} and {CA_KEY} in {cert_path.parent} to create a new CA "
        f"(clients then have to trust the new {CA_CERT})"
    )
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TlsError(f"cannot use the local CA in {cert_path.parent}: {exc}; {reset}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TlsError(f"{key_path}: the CA key must be an EC or RSA key; {reset}")
    if not _same_key(cert, key):
        raise TlsError(f"{key_path} is not the key of {cert_path}; {reset}")
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        expiry = cert.not_valid_after_utc.date().isoformat()
        raise TlsError(f"the local CA {cert_path} expires on {expiry}; {reset}")
    return cert, key


def _create_ca(
    cert_path: Path, key_path: Path, now: datetime, hosts: list[_Host]
) -> tuple[x509.Certificate, _SigningKey]:
    permitted = _subtrees(hosts)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.NameConstraints(permitted, None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def _load_server(files: TlsFiles, ca_cert: x509.Certificate) -> x509.Certificate | None:
    """The kept server certificate. Returns None if it is missing, unreadable, does not match
    its key, or was not issued by this CA."""
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca_cert)
    except Exception:  # any of a dozen parse and signature errors: all mean "make a new one"
        return None
    return cert if _same_key(cert, key) else None


def _still_good(cert: x509.Certificate, wanted: list[_Host], now: datetime) -> bool:
    return (
        cert.not_valid_before_utc <= now
        and cert.not_valid_after_utc - now > RENEW_BEFORE
        and set(wanted) <= _hosts_of(cert)
    )


def _create_server(
    files: TlsFiles,
    ca_cert: x509.Certificate,
    ca_key: _SigningKey,
    hosts: list[_Host],
    now: datetime,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    not_before = now - BACKDATE
    sans = [x509.DNSName(h) if isinstance(h, str) else x509.IPAddress(h) for h in hosts]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(min(not_before + SERVER_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(files.key, _key_pem(key), 0o600)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),  # uvicorn must read the key without a prompt
    )


def _same_key(cert: x509.Certificate, key: object) -> bool:
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return False
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write a temporary file beside the target and rename it over the target, so a crash
    never leaves half a PEM file. ``mkstemp`` creates it 0o600, so a key is never readable by
    others, even briefly."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise generation between sandboxes that start at the same time on one directory.
    Without this, two processes could leave a key and a certificate that do not match."""
    with open(directory / ".lock", "ab") as handle:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield
