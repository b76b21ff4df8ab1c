from __future__ import annotations

import ipaddress
import re

from django import forms

from tlsconfig import generate, pki
from tlsconfig.models import Certificate, CertificateRevocationList, DhParameters
from tlsconfig.store import DATE_CONFIRMATION

UPLOAD_KINDS = [
    ("ca", "CA certificate"),
    ("server", "server certificate (with its key)"),
    ("client", "client certificate (with its key)"),
    ("crl", "certificate revocation list (CRL)"),
    ("dh", "DH parameters"),
]
HOSTNAME = re.compile(r"(?=.{1,253}\Z)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
COMMON_NAME = re.compile(r"[A-Za-z0-9 .,_@()'+:=/-]{1,64}")


class StyledForm(forms.Form):
    """Bootstrap classes on every widget, so templates can render fields as they are."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select form-select-sm"
            else:
                css = "form-control form-control-sm"
            widget.attrs["class"] = css


def read_upload(upload, limit: int) -> bytes:
    """The file's bytes, refusing before reading when it is larger than any object of its kind."""
    if upload.size > limit:
        raise forms.ValidationError(f"The file is {upload.size:,} bytes; the limit is {limit:,} bytes.")
    return upload.read(limit + 1)


def ca_choices(server):
    return server.tls_certificates.filter(role=Certificate.Role.CA)


class UploadForm(StyledForm):
    kind = forms.ChoiceField(choices=UPLOAD_KINDS, label="What it is")
    file = forms.FileField(label="Certificate, CRL or DH parameters file (PEM or DER)", allow_empty_file=True)
    key_file = forms.FileField(
        required=False, allow_empty_file=True, label="Private key (for server and client certificates)"
    )
    passphrase = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput, label="Passphrase of the key, if it is encrypted"
    )
    ca = forms.ModelChoiceField(queryset=Certificate.objects.none(), required=False, label="Verifies to the CA")
    accept_out_of_dates = forms.BooleanField(required=False, label=DATE_CONFIRMATION.capitalize())

    def __init__(self, *args, server, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ca"].queryset = ca_choices(server)

    def clean_file(self) -> bytes:
        return read_upload(self.cleaned_data["file"], pki.MAX_CRL_BYTES)

    def clean_key_file(self) -> bytes:
        upload = self.cleaned_data.get("key_file")
        return read_upload(upload, pki.MAX_PEM_BYTES) if upload else b""


def clean_sans(raw: str) -> list[str]:
    sans = [item for item in re.split(r"[\s,]+", raw) if item]
    for san in sans:
        try:
            ipaddress.ip_address(san)
        except ValueError:
            if not HOSTNAME.fullmatch(san):
                raise forms.ValidationError(f"“{san}” is neither a host name nor an IP address.") from None
    if len(sans) > 50:
        raise forms.ValidationError("At most 50 alternative names.")
    return sans


class GenerateForm(StyledForm):
    kind = forms.ChoiceField(
        label="What to make",
        choices=[
            ("ca", "a private CA"),
            ("server", "a server certificate, signed by a CA here"),
            ("client", "a client certificate, signed by a CA here"),
            ("csr", "a CSR for an outside CA"),
            ("dh", "DH parameters"),
        ],
    )
    common_name = forms.CharField(required=False, max_length=64, label="Common name")
    sans = forms.CharField(
        required=False,
        max_length=4000,
        label="Alternative names",
        help_text="Host names or IP addresses, separated by spaces or commas.",
    )
    key_type = forms.ChoiceField(choices=list(generate.KEY_CHOICES.items()), initial="rsa2048", required=False)
    days = forms.IntegerField(min_value=1, max_value=3650, initial=365, required=False, label="Valid for (days)")
    ca = forms.ModelChoiceField(
        queryset=Certificate.objects.none(),
        required=False,
        label="Signed by the CA",
        help_text="Server and client certificates.",
    )
    dh_bits = forms.TypedChoiceField(
        choices=[(2048, "2048"), (3072, "3072"), (4096, "4096")], coerce=int, required=False, label="DH bits"
    )

    def __init__(self, *args, server, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ca"].queryset = ca_choices(server).filter(private_key__isnull=False)

    def clean_common_name(self) -> str:
        value = self.cleaned_data["common_name"].strip()
        if value and not COMMON_NAME.fullmatch(value):
            raise forms.ValidationError("Use letters, digits, spaces and . , _ @ ( ) ' + : = / - only.")
        return value

    def clean_sans(self) -> list[str]:
        return clean_sans(self.cleaned_data["sans"])

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind in ("ca", "server", "client", "csr") and not data.get("common_name"):
            self.add_error("common_name", "A certificate needs a common name.")
        if kind in ("server", "client") and not data.get("ca"):
            self.add_error("ca", "Choose the CA that signs it (one whose key is in the store).")
        if kind == "dh" and not data.get("dh_bits"):
            data["dh_bits"] = 2048
        if kind != "dh" and not data.get("key_type"):
            data["key_type"] = "rsa2048"
        data["days"] = data.get("days") or 365
        return data

    def params(self) -> dict:
        data = self.cleaned_data
        if data["kind"] == "dh":
            return {"bits": data["dh_bits"]}
        params = {"common_name": data["common_name"], "sans": data["sans"], "key_type": data["key_type"]}
        if data["kind"] != "csr":
            params["days"] = data["days"]
        if data.get("ca"):
            params["ca"] = data["ca"].pk
        return params


TIMEOUT = re.compile(r"([1-9][0-9]{0,5}[smhd])+")


class DeployForm(StyledForm):
    server_certificate = forms.ModelChoiceField(queryset=Certificate.objects.none())
    client_certificate = forms.ModelChoiceField(queryset=Certificate.objects.none(), required=False)
    crl = forms.ModelChoiceField(queryset=CertificateRevocationList.objects.none(), required=False, label="CRL")
    dh_parameters = forms.ModelChoiceField(
        queryset=DhParameters.objects.none(), required=False, label="DH parameters (empty: sendmail's built-in group)"
    )
    tls_srv_options = forms.ChoiceField(
        required=False,
        choices=[("", "ask clients for a certificate"), ("V", "V: do not ask clients for a certificate")],
        label="TLSSrvOptions",
    )
    timeout_starttls = forms.CharField(required=False, max_length=20, label="Timeout.starttls (e.g. 1h)")

    def __init__(self, *args, server, **kwargs):
        super().__init__(*args, **kwargs)
        with_keys = server.tls_certificates.filter(private_key__isnull=False, issuer_ca__isnull=False)
        self.fields["server_certificate"].queryset = with_keys.filter(role=Certificate.Role.SERVER)
        self.fields["client_certificate"].queryset = with_keys.filter(role=Certificate.Role.CLIENT)
        self.fields["crl"].queryset = server.tls_crls.all()
        self.fields["dh_parameters"].queryset = server.tls_dh_parameters.all()

    def clean_timeout_starttls(self) -> str:
        value = self.cleaned_data["timeout_starttls"].strip()
        if value and not TIMEOUT.fullmatch(value):
            raise forms.ValidationError("An interval such as 30m, 1h or 1h30m.")
        return value

    def clean(self):
        data = super().clean()
        server_cert, crl = data.get("server_certificate"), data.get("crl")
        if server_cert and crl and crl.ca_id != server_cert.issuer_ca_id:
            self.add_error("crl", "This CRL belongs to another CA than the server certificate's.")
        return data
