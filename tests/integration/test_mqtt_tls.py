"""MQTT over TLS with the test's own CA: a daemon given that CA (mqtt.tls_ca_file) takes a
signed trigger over mqtts:// and publishes its state there; a daemon given another CA does
not connect and says in one line what is wrong and what to do."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broadcaster.daemon import Daemon
from broadcaster.reload import load_usable
from tests.integration.harness import running_daemon, signed_trigger, webhook, write_deployment
from tests.servers import MosquittoServer, start_mosquitto_tls


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_ca(folder: Path, name: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _write(folder / f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM)), key, cert


def server_cert(
    folder: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("broker"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        _write(folder / "broker.pem", cert.public_bytes(serialization.Encoding.PEM)),
        _write(folder / "broker.key", key_pem),
    )


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[MosquittoServer, Path, Path]]:
    """The broker with a certificate of the test's CA; the CA, and another CA."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, ca_key, ca_cert = make_ca(certs, "test-ca")
    other, _, _ = make_ca(certs, "other-ca")
    cert, key = server_cert(certs, ca_key, ca_cert)
    broker = start_mosquitto_tls(tmp_path, ca, cert, key)
    try:
        yield broker, ca, other
    finally:
        broker.stop()


def tls_config(tmp_path: Path, broker: MosquittoServer, ca: Path, hook_url: str) -> Path:
    config = write_deployment(
        tmp_path / "deployment",
        mqtt_url=f"mqtts://127.0.0.1:{broker.port}",
        channels={"web": webhook(hook_url)},
    )
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["mqtt"]["tls_ca_file"] = str(ca)
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return config


async def test_a_daemon_with_the_brokers_ca_takes_a_trigger_over_tls(tmp_path, tls_broker, hooks):
    broker, ca, _ = tls_broker
    (tmp_path / "deployment").mkdir()
    config = tls_config(tmp_path, broker, ca, hooks[0].url)
    context = ssl.create_default_context(cafile=str(ca))
    async with (
        running_daemon(config),
        aiomqtt.Client("127.0.0.1", broker.port, tls_context=context, timeout=10) as client,
    ):
        await client.subscribe("bc/alerts/FW-TLS-1", qos=1)
        trigger = signed_trigger("FW-TLS-1", incident="E-TLS")
        await client.publish("bc/trigger", json.dumps(trigger), qos=1)
        async with asyncio.timeout(20):  # a safety net, not synchronisation
            async for message in client.messages:
                state = json.loads(bytes(message.payload))["state"]
                if state == "sent":
                    break
    assert len(hooks[0].posts) == 1


async def test_another_ca_is_refused_with_what_to_do(tmp_path, tls_broker, hooks):
    broker, _, other = tls_broker
    (tmp_path / "deployment").mkdir()
    config = tls_config(tmp_path, broker, other, hooks[0].url)
    daemon = Daemon(load_usable(config).deployment)
    await daemon.start()
    try:
        async with asyncio.timeout(20):  # a safety net, not synchronisation
            await daemon.mqtt.attempt_failed.wait()
        error = daemon.mqtt.last_error or ""
        health = await daemon.health()
    finally:
        await daemon.stop()
    assert f"TLS with the broker 127.0.0.1:{broker.port} failed" in error
    assert "CERTIFICATE_VERIFY_FAILED" in error
    assert str(other) in error
    assert "mqtt.tls_ca_file" in error
    assert health["mqtt"] is False
