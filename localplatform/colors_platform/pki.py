"""The local cluster's PKI: one CA, the service-account key, a certificate per identity (each component, the
administrator, the worker node, the local Prometheus), and the kubeconfigs that use them."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path

import yaml

from .config import CONTEXT, Config, write_if_changed
from .errors import log


def host_ip() -> str:
    """The address the API server advertises (the endpoint of the `kubernetes` Service)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent; this only asks the routing table
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def identities(cfg: Config) -> list[tuple[str, str, str | None, list[str] | None]]:
    """(file name, CN, O, server SANs or None for a client) of every certificate the platform uses."""
    domain = cfg.data["kubernetes"]["cluster_domain"]
    service_ip = str(next(ipaddress.ip_network(cfg.data["kubernetes"]["service_cidr"]).hosts()))
    node_cfg = cfg.node
    node = node_cfg["name"]
    return [
        ("apiserver", "kube-apiserver", None,
         ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
          f"kubernetes.default.svc.{domain}", "127.0.0.1", host_ip(), service_ip]),
        # Cluster administrator of the local platform (the kubeconfig handed to Ansible and to people).
        ("admin", "colors-local-admin", "system:masters", None),
        ("kube-controller-manager", "system:kube-controller-manager", None, None),
        ("kube-scheduler", "system:kube-scheduler", None, None),
        # kwok stands in for every simulated kubelet at once, which the Node authorizer cannot express.
        ("kwok", "kwok-controller", "system:masters", None),
        # The real worker node: its kubelet is a node to the Node authorizer, kube-proxy has its default binding
        # (system:node-proxier), and the API server presents its own identity to the kubelet (logs, exec).
        ("kubelet", f"system:node:{node}", "system:nodes", None),
        ("kubelet-server", node, None, [node, host_ip()]),
        ("kube-proxy", "system:kube-proxy", None, None),
        # The node's NetworkPolicy engine: reads policies, namespaces and pods (the ClusterRole the local_platform
        # role binds to this user, as kube-network-policies' manifest binds its ServiceAccount).
        ("network-policy", node_cfg["network_policy_identity"], None, None),
        ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters", None),
        # The local Prometheus: /metrics of the API server through the built-in system:monitoring group; the pods of
        # Colors through the pods get/list/watch the monitoring role grants this user (as kube-prometheus-stack's
        # chart grants its Prometheus).
        ("prometheus", cfg.data["prometheus"]["identity"], "system:monitoring", None),
        # The identities EKS maps through its access entries (terraform/modules/cluster_access), as EKS names them:
        # the user is the assumed role's session, the group the entry's Kubernetes group. Releases run as the
        # deployer; only bootstrap.yml as admin.
        ("deployer", f"arn:aws:sts::{cfg.data['aws']['account_id']}:assumed-role/colors-local-deploy/local",
         "colors:deployers", None),
        ("oncall", f"arn:aws:sts::{cfg.data['aws']['account_id']}:assumed-role/colors-oncall/local",
         "colors:oncall", None),
    ]


def ensure_pki(cfg: Config) -> None:
    """The cluster CA, the service-account key and every identity of identities(), each made when missing (a
    platform started before the worker node existed gains the node's certificates, and keeps everything else)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki = cfg.pki
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    now = datetime.datetime.now(datetime.UTC)

    def key_pem(key) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def write(name: str, data: bytes, mode: int = 0o600) -> None:
        path = pki / name
        path.write_bytes(data)
        os.chmod(path, mode)

    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "colors-local-ca")])
    if (pki / "ca.crt").exists() and (pki / "ca.key").exists():
        ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    else:
        log(f"generating the cluster PKI in {pki}")
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=3650))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False,
                                           encipher_only=False, decipher_only=False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        write("ca.key", key_pem(ca_key))
        write("ca.crt", ca.public_bytes(serialization.Encoding.PEM), 0o644)

    for name, cn, org, sans in identities(cfg):
        if (pki / f"{name}.crt").exists() and (pki / f"{name}.key").exists():
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        builder = (x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(ca_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=825)))
        if sans is not None:
            names: list[x509.GeneralName] = []
            for san in dict.fromkeys(sans):
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(san)))
                except ValueError:
                    names.append(x509.DNSName(san))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if sans is not None else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False).sign(ca_key, hashes.SHA256())
        write(f"{name}.key", key_pem(key))
        write(f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)

    if not (pki / "sa.pub").exists():
        sa_key = ec.generate_private_key(ec.SECP256R1())
        write("sa.key", key_pem(sa_key))
        write("sa.pub", sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
    for user in ("kube-controller-manager", "kube-scheduler", "kwok", "kubelet", "kube-proxy", "network-policy",
                 "prometheus"):
        path = pki / f"{user}.kubeconfig"
        if not path.exists():
            write_kubeconfig(cfg, path, user)
    # The kubeconfig handed to Ansible and to people: the administrator (current context), and the identities EKS
    # maps, each in its own context (as `aws eks update-kubeconfig` run with the deploy or on-call role's credentials).
    write_kubeconfig(cfg, cfg.kubeconfig, "admin", extra=PEOPLE)


# The kubeconfig contexts beside the administrator's: context name -> the identity (certificate) it uses.
PEOPLE = {f"{CONTEXT}-deployer": "deployer", f"{CONTEXT}-oncall": "oncall"}


def write_kubeconfig(cfg: Config, path: Path, user: str, extra: dict[str, str] | None = None) -> None:
    """A kubeconfig whose current context is `user`'s; `extra` adds a context per other identity (name -> user)."""
    contexts = {CONTEXT: user, **(extra or {})}
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": CONTEXT, "preferences": {},
        "clusters": [{"name": CONTEXT, "cluster": {
            "server": f"https://127.0.0.1:{cfg.ports['kube_apiserver']}",
            "certificate-authority": str(cfg.pki / "ca.crt")}}],
        "users": [{"name": who, "user": {"client-certificate": str(cfg.pki / f"{who}.crt"),
                                         "client-key": str(cfg.pki / f"{who}.key")}} for who in contexts.values()],
        "contexts": [{"name": name, "context": {"cluster": CONTEXT, "user": who}} for name, who in contexts.items()],
    }
    write_if_changed(path, yaml.safe_dump(config, sort_keys=False))
    os.chmod(path, 0o600)


def kubeconfig_flags(cfg: Config, user: str) -> list[str]:
    """The flags that give a control-plane component its identity's kubeconfig."""
    path = cfg.pki / f"{user}.kubeconfig"
    return [f"--kubeconfig={path}", f"--authentication-kubeconfig={path}", f"--authorization-kubeconfig={path}"]
