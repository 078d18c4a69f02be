"""Webhooks CHeKT sends to partners: the catalogue, signing, profiles and the dispatcher.

``verify_signature`` is what a partner's receiver uses to check a delivery."""

from sandbox.webhooks.signing import InvalidSignature, sign, verify_signature

__all__ = ["InvalidSignature", "sign", "verify_signature"]
