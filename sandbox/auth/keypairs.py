"""Key pairs a partner can use for assertion tokens (``chekt-sandbox keys new``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec as ec_keys
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.auth.assertions import algorithm_for, thumbprint


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    kid: str
    alg: str


def write_key_pair(directory: Path, name: str, *, ec: bool = False) -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    private_key = (
        ec_keys.generate_private_key(ec_keys.SECP256R1())
        if ec
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    public_key = private_key.public_key()
    private_path = directory / f"{name}-private.pem"
    public_path = directory / f"{name}-public.pem"
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(
        public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(private_path, public_path, thumbprint(public_key), algorithm_for(public_key))
