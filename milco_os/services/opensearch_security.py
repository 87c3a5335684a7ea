"""A local OpenSearch node with the security plugin: TLS on HTTP and transport, basic-auth users.

For rehearsing against a secured cluster. The plugin is the release zip from Maven Central
(``org.opensearch.plugin:opensearch-security:<version>.0``), installed with the
distribution's own ``opensearch-plugin`` into a separate copy of the distribution; it
must match the OpenSearch version exactly (``SECURE_VERSION`` is one Maven Central
serves both for). Certificates (a CA, the node, an admin) are made on the spot with
``cryptography``; user passwords are hashed by the plugin's own ``hash.sh``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from milco_os.errors import ServiceError
from milco_os.services import maven
from milco_os.services.java import JavaHome
from milco_os.services.plugin_copy import with_plugins

SECURE_VERSION = "2.19.4"
CERTS = "certs"
CA_FILE = "ca.pem"
ORGANIZATION = "milco-os-dev"
# Set to "REQUIRE" in a node's settings, its HTTP layer takes only clients with a certificate of its CA.
CLIENT_AUTH_MODE = "plugins.security.ssl.http.clientauth_mode"


@dataclass(frozen=True)
class BasicAuthUser:
    """An internal user of the security plugin; ``backend_role`` picks its role (admin, readall, ...)."""

    name: str
    password: str
    backend_role: str = "admin"

    def __repr__(self) -> str:
        return f"BasicAuthUser(name={self.name!r}, backend_role={self.backend_role!r})"



def plugin_artifact(version: str) -> maven.Artifact:
    return maven.Artifact("org.opensearch.plugin", "opensearch-security", f"{version}.0", "zip")


def install(home: Path, version: str, *, repository: Path, java: JavaHome) -> Path:
    """A copy of the distribution at ``home`` with the security plugin installed (made once)."""
    return with_plugins(home, "secure", [maven.fetch(plugin_artifact(version), repository)], java)


def make_certificates(folder: Path) -> None:
    """A CA, a node certificate for 127.0.0.1/localhost and an admin client certificate (PEM, PKCS#8 keys)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def issue(subject: x509.Name, key, issuer: x509.Name, issuer_key, *, ca: bool, extensions=()):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(stem: str, key, certificate) -> None:
        (folder / f"{stem}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        (folder / f"{stem}-key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"{ORGANIZATION} CA")])
    ca = issue(ca_name, ca_key, ca_name, ca_key, ca=True, extensions=[
        x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                      data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                      encipher_only=False, decipher_only=False)])
    write("ca", ca_key, ca)
    for stem, usages, names in (
        ("node", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
         [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
        ("admin", [ExtendedKeyUsageOID.CLIENT_AUTH], []),
    ):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        extensions = [x509.ExtendedKeyUsage(usages)] + ([x509.SubjectAlternativeName(names)] if names else [])
        write(stem, key, issue(name(stem), key, ca_name, ca_key, ca=False, extensions=extensions))


def distinguished_name(common_name: str) -> str:
    """The DN as the plugin compares it (RFC 2253 order: most specific first)."""
    return f"CN={common_name},O={ORGANIZATION}"


def node_settings() -> dict[str, object]:
    """``opensearch.yml`` settings for TLS everywhere and the certificates of ``make_certificates``."""
    settings: dict[str, object] = {}
    for layer in ("transport", "http"):
        settings[f"plugins.security.ssl.{layer}.pemcert_filepath"] = f"{CERTS}/node.pem"
        settings[f"plugins.security.ssl.{layer}.pemkey_filepath"] = f"{CERTS}/node-key.pem"
        settings[f"plugins.security.ssl.{layer}.pemtrustedcas_filepath"] = f"{CERTS}/{CA_FILE}"
    settings.update({
        "plugins.security.ssl.http.enabled": True,
        "plugins.security.ssl.transport.enforce_hostname_verification": False,
        "plugins.security.allow_default_init_securityindex": True,
        "plugins.security.authcz.admin_dn": [distinguished_name("admin")],
        "plugins.security.nodes_dn": [distinguished_name("node")],
        "plugins.security.audit.type": "noop",
    })
    return settings


def hash_password(secure_home: Path, password: str, java: JavaHome) -> str:
    """The plugin's bcrypt hash of ``password`` (its ``hash.sh`` reads it from stdin, so no command line shows it)."""
    script = secure_home / "plugins" / "opensearch-security" / "tools" / "hash.sh"
    result = subprocess.run(["bash", str(script), "-env", "MILCO_OS_HASH_PASSWORD"], capture_output=True,
                            text=True, env={**os.environ, "JAVA_HOME": str(java.path),
                                            "OPENSEARCH_JAVA_HOME": str(java.path),
                                            "MILCO_OS_HASH_PASSWORD": password})
    hashed = next((line.strip() for line in result.stdout.splitlines() if line.startswith("$2")), None)
    if result.returncode != 0 or hashed is None:
        raise ServiceError("the security plugin's hash.sh could not hash a password.",
                           log_tail=result.stderr[-2000:])
    return hashed


def internal_users_yaml(secure_home: Path, users: tuple[BasicAuthUser, ...], java: JavaHome) -> str:
    """``internal_users.yml`` with exactly these users (JSON-quoted values are valid YAML)."""
    import json

    lines = ['_meta: {type: "internalusers", config_version: 2}']
    for user in users:
        hashed = hash_password(secure_home, user.password, java)
        lines.append(f"{json.dumps(user.name)}: {{hash: {json.dumps(hashed)}, reserved: false, "
                     f"backend_roles: [{json.dumps(user.backend_role)}]}}")
    return "\n".join(lines) + "\n"
