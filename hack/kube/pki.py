"""A throwaway certificate authority and the keys and certificates of a test cluster,
made with the ``openssl`` command line (Debian's openssl 3; test use only).

* :class:`LocalCA` keeps ``ca.key`` / ``ca.crt`` in a directory and issues leaf
  certificates: serving (SANs for IP addresses and DNS names), client (``O=`` groups, as
  the API server reads them), or both.
* :func:`rsa_key_pair` makes a bare key pair (the service-account signing key).
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import re
import secrets
import shutil
import ssl
from pathlib import Path
from collections.abc import Sequence

from .common import EXIT_CLUSTER_FAILED, KubeToolsError, run

OPENSSL_TIMEOUT_S = 60


def openssl_exe() -> str:
    exe = shutil.which("openssl")
    if not exe:
        raise KubeToolsError("the `openssl` command is not on PATH (Debian: apt-get install openssl)",
                             EXIT_CLUSTER_FAILED)
    return exe


def _openssl(*args: str) -> str:
    return run([openssl_exe(), *args], timeout=OPENSSL_TIMEOUT_S, what=f"openssl {args[0]}",
               code=EXIT_CLUSTER_FAILED)


def rsa_key(path: Path, bits: int = 2048) -> Path:
    """A new RSA private key (PKCS#8 PEM, mode 0600) at ``path``."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}", "-out", str(path))
    return path


def rsa_key_pair(private: Path, public: Path, bits: int = 2048) -> None:
    """An RSA key pair: ``private`` (PKCS#8) and ``public`` (SubjectPublicKeyInfo PEM)."""
    rsa_key(private, bits)
    _openssl("pkey", "-in", str(private), "-pubout", "-out", str(public))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _subject(cn: str, orgs: Sequence[str] = ()) -> str:
    def esc(v: str) -> str:
        return re.sub(r"([/=+,\\])", r"\\\1", v)

    return "".join(f"/O={esc(o)}" for o in orgs) + f"/CN={esc(cn)}"


@dataclasses.dataclass(frozen=True)
class ServingCert:
    """A certificate signed by the cluster's test CA (e.g. a webhook's on 127.0.0.1)."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    ca_pem: bytes

    @property
    def ca_bundle(self) -> str:
        """base64 of the CA's PEM: what a webhook clientConfig.caBundle wants."""
        return base64.b64encode(self.ca_pem).decode()

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


class LocalCA:
    """A throwaway certificate authority kept in ``directory`` (``ca.crt``, ``ca.key``)."""

    def __init__(self, directory: Path, cn: str = "switchyard-test-ca", days: int = 3650) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cn = cn
        self.cert_file = self.dir / "ca.crt"
        self.key_file = self.dir / "ca.key"
        rsa_key(self.key_file)
        _openssl(
            "req", "-x509", "-new", "-key", str(self.key_file), "-out", str(self.cert_file),
            "-days", str(days), "-subj", _subject(cn), "-sha256",
            "-set_serial", str(secrets.randbits(120) | 1 << 120),
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,digitalSignature,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash",
        )
        self.cert_pem = self.cert_file.read_bytes()
        self._n = 0

    def issue(self, name: str, hosts: Sequence[str] = ("127.0.0.1", "localhost"), *,
              orgs: Sequence[str] = (), days: int = 365, basename: str | None = None) -> ServingCert:
        """A key and a certificate for ``name`` (the CN) signed by this CA, good for TLS
        server and client use: ``hosts`` become the subjectAltNames (IP or DNS), ``orgs``
        the ``O=`` entries (the groups the API server gives a client certificate)."""
        self._n += 1
        base = basename or re.sub(r"[^A-Za-z0-9_.-]", "_", name) or f"cert{self._n}"
        cf, kf = self.dir / f"{base}.crt", self.dir / f"{base}.key"
        csr, ext = self.dir / f"{base}.csr", self.dir / f"{base}.ext"
        rsa_key(kf)
        _openssl("req", "-new", "-key", str(kf), "-out", str(csr), "-subj", _subject(name, orgs))
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth,clientAuth",
            "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid",
        ]
        if hosts:
            lines.append("subjectAltName=" + ",".join(
                f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in hosts))
        ext.write_text("\n".join(lines) + "\n")
        try:
            _openssl(
                "x509", "-req", "-in", str(csr), "-CA", str(self.cert_file), "-CAkey", str(self.key_file),
                "-set_serial", str(secrets.randbits(120) | 1 << 120), "-days", str(days), "-sha256",
                "-extfile", str(ext), "-out", str(cf),
            )
        finally:
            csr.unlink(missing_ok=True)
            ext.unlink(missing_ok=True)
        return ServingCert(cert_file=cf, key_file=kf, ca_file=self.cert_file, ca_pem=self.cert_pem)
