"""Test certificates for the local broker's SASL_SSL and mTLS listeners (scripts/kafka.sh).

Writes into DIR, once (kept if `ca.pem` is already there):
- `ca.pem`: the test CA clients trust (WEBHOOKS_KAFKA_SSL_CA_FILE);
- `broker-keystore.pem`: the broker's key (PKCS#8, as Kafka's PEM keystore requires) and its
  certificate for 127.0.0.1 and localhost;
- `client-cert.pem` and `client-key.pem`: a client certificate (CN=webhooks-client) for the
  mTLS listener (WEBHOOKS_KAFKA_SSL_CERT_FILE / _KEY_FILE).
"""

from __future__ import annotations

import sys
from pathlib import Path

import trustme
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)


def pkcs8(key_pem: bytes) -> bytes:
    key = load_pem_private_key(key_pem, password=None)
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "ca.pem").exists():
        return
    ca = trustme.CA(organization_name="audience-webhooks test CA")
    broker = ca.issue_cert("127.0.0.1", "localhost", common_name="kafka-broker")
    chain = b"".join(blob.bytes() for blob in broker.cert_chain_pems)
    (directory / "broker-keystore.pem").write_bytes(pkcs8(broker.private_key_pem.bytes()) + chain)
    client = ca.issue_cert("webhooks-client@example.test", common_name="webhooks-client")
    (directory / "client-cert.pem").write_bytes(client.cert_chain_pems[0].bytes())
    (directory / "client-key.pem").write_bytes(pkcs8(client.private_key_pem.bytes()))
    for name in ("broker-keystore.pem", "client-key.pem"):
        (directory / name).chmod(0o600)
    # Last, so an interrupted run is redone rather than half kept.
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: kafka_tls.py DIR")
    write(Path(sys.argv[1]))
