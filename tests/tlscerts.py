"""Test certificates, made with the openssl CLI: a private CA and, signed by it, a server
certificate for 127.0.0.1/localhost and a client certificate (mutual TLS). For the TLS tests of
Kafka (SASL_SSL) and ClickHouse (its secure port); never used outside tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA certificate (PEM): what clients trust
    server_cert: Path
    server_key: Path  # unencrypted PKCS#8 PEM
    client_cert: Path
    client_key: Path

    @property
    def server_pem(self) -> Path:
        """Key and certificate chain in one PEM file (Kafka's PEM keystore)."""
        return self.server_cert.with_name("server-keystore.pem")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(folder: Path) -> Certs:
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
             "-subj", "/CN=mevwatch test CA")
    out = {}
    for who, cn, ext in (("server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "mevwatch", "")):
        key, csr, cert = folder / f"{who}.key", folder / f"{who}.csr", folder / f"{who}.pem"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}")
        args = ["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
                "-days", "2"]
        if ext:
            extfile = folder / f"{who}.ext"
            extfile.write_text(ext + "\n")
            args += ["-extfile", str(extfile)]
        _openssl(*args)
        out[who] = (cert, key)
    certs = Certs(ca, out["server"][0], out["server"][1], out["client"][0], out["client"][1])
    certs.server_pem.write_text(certs.server_key.read_text() + certs.server_cert.read_text())
    return certs
