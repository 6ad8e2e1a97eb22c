"""Type stubs for plait.green.ssl."""

import ssl as _stdssl
from ssl import ALERT_DESCRIPTION_ACCESS_DENIED as ALERT_DESCRIPTION_ACCESS_DENIED
from ssl import ALERT_DESCRIPTION_BAD_CERTIFICATE as ALERT_DESCRIPTION_BAD_CERTIFICATE
from ssl import ALERT_DESCRIPTION_BAD_CERTIFICATE_HASH_VALUE as ALERT_DESCRIPTION_BAD_CERTIFICATE_HASH_VALUE
from ssl import (
    ALERT_DESCRIPTION_BAD_CERTIFICATE_STATUS_RESPONSE as ALERT_DESCRIPTION_BAD_CERTIFICATE_STATUS_RESPONSE,
)
from ssl import ALERT_DESCRIPTION_BAD_RECORD_MAC as ALERT_DESCRIPTION_BAD_RECORD_MAC
from ssl import ALERT_DESCRIPTION_CERTIFICATE_EXPIRED as ALERT_DESCRIPTION_CERTIFICATE_EXPIRED
from ssl import ALERT_DESCRIPTION_CERTIFICATE_REVOKED as ALERT_DESCRIPTION_CERTIFICATE_REVOKED
from ssl import ALERT_DESCRIPTION_CERTIFICATE_UNKNOWN as ALERT_DESCRIPTION_CERTIFICATE_UNKNOWN
from ssl import ALERT_DESCRIPTION_CERTIFICATE_UNOBTAINABLE as ALERT_DESCRIPTION_CERTIFICATE_UNOBTAINABLE
from ssl import ALERT_DESCRIPTION_CLOSE_NOTIFY as ALERT_DESCRIPTION_CLOSE_NOTIFY
from ssl import ALERT_DESCRIPTION_DECODE_ERROR as ALERT_DESCRIPTION_DECODE_ERROR
from ssl import ALERT_DESCRIPTION_DECOMPRESSION_FAILURE as ALERT_DESCRIPTION_DECOMPRESSION_FAILURE
from ssl import ALERT_DESCRIPTION_DECRYPT_ERROR as ALERT_DESCRIPTION_DECRYPT_ERROR
from ssl import ALERT_DESCRIPTION_HANDSHAKE_FAILURE as ALERT_DESCRIPTION_HANDSHAKE_FAILURE
from ssl import ALERT_DESCRIPTION_ILLEGAL_PARAMETER as ALERT_DESCRIPTION_ILLEGAL_PARAMETER
from ssl import ALERT_DESCRIPTION_INSUFFICIENT_SECURITY as ALERT_DESCRIPTION_INSUFFICIENT_SECURITY
from ssl import ALERT_DESCRIPTION_INTERNAL_ERROR as ALERT_DESCRIPTION_INTERNAL_ERROR
from ssl import ALERT_DESCRIPTION_NO_RENEGOTIATION as ALERT_DESCRIPTION_NO_RENEGOTIATION
from ssl import ALERT_DESCRIPTION_PROTOCOL_VERSION as ALERT_DESCRIPTION_PROTOCOL_VERSION
from ssl import ALERT_DESCRIPTION_RECORD_OVERFLOW as ALERT_DESCRIPTION_RECORD_OVERFLOW
from ssl import ALERT_DESCRIPTION_UNEXPECTED_MESSAGE as ALERT_DESCRIPTION_UNEXPECTED_MESSAGE
from ssl import ALERT_DESCRIPTION_UNKNOWN_CA as ALERT_DESCRIPTION_UNKNOWN_CA
from ssl import ALERT_DESCRIPTION_UNKNOWN_PSK_IDENTITY as ALERT_DESCRIPTION_UNKNOWN_PSK_IDENTITY
from ssl import ALERT_DESCRIPTION_UNRECOGNIZED_NAME as ALERT_DESCRIPTION_UNRECOGNIZED_NAME
from ssl import ALERT_DESCRIPTION_UNSUPPORTED_CERTIFICATE as ALERT_DESCRIPTION_UNSUPPORTED_CERTIFICATE
from ssl import ALERT_DESCRIPTION_UNSUPPORTED_EXTENSION as ALERT_DESCRIPTION_UNSUPPORTED_EXTENSION
from ssl import ALERT_DESCRIPTION_USER_CANCELLED as ALERT_DESCRIPTION_USER_CANCELLED
from ssl import CERT_NONE as CERT_NONE
from ssl import CERT_OPTIONAL as CERT_OPTIONAL
from ssl import CERT_REQUIRED as CERT_REQUIRED
from ssl import CHANNEL_BINDING_TYPES as CHANNEL_BINDING_TYPES
from ssl import HAS_ALPN as HAS_ALPN
from ssl import HAS_ECDH as HAS_ECDH
from ssl import HAS_NEVER_CHECK_COMMON_NAME as HAS_NEVER_CHECK_COMMON_NAME
from ssl import HAS_NPN as HAS_NPN
from ssl import HAS_SNI as HAS_SNI
from ssl import OP_ALL as OP_ALL
from ssl import OP_CIPHER_SERVER_PREFERENCE as OP_CIPHER_SERVER_PREFERENCE
from ssl import OP_ENABLE_MIDDLEBOX_COMPAT as OP_ENABLE_MIDDLEBOX_COMPAT
from ssl import OP_IGNORE_UNEXPECTED_EOF as OP_IGNORE_UNEXPECTED_EOF
from ssl import OP_NO_COMPRESSION as OP_NO_COMPRESSION
from ssl import OP_NO_RENEGOTIATION as OP_NO_RENEGOTIATION
from ssl import OP_NO_TICKET as OP_NO_TICKET
from ssl import OP_SINGLE_DH_USE as OP_SINGLE_DH_USE
from ssl import OP_SINGLE_ECDH_USE as OP_SINGLE_ECDH_USE
from ssl import OPENSSL_VERSION as OPENSSL_VERSION
from ssl import OPENSSL_VERSION_INFO as OPENSSL_VERSION_INFO
from ssl import OPENSSL_VERSION_NUMBER as OPENSSL_VERSION_NUMBER
from ssl import PEM_FOOTER as PEM_FOOTER
from ssl import PEM_HEADER as PEM_HEADER
from ssl import PROTOCOL_TLS as PROTOCOL_TLS
from ssl import PROTOCOL_TLS_CLIENT as PROTOCOL_TLS_CLIENT
from ssl import PROTOCOL_TLS_SERVER as PROTOCOL_TLS_SERVER
from ssl import SO_TYPE as SO_TYPE
from ssl import SOCK_STREAM as SOCK_STREAM
from ssl import SOL_SOCKET as SOL_SOCKET
from ssl import SSL_ERROR_EOF as SSL_ERROR_EOF
from ssl import SSL_ERROR_INVALID_ERROR_CODE as SSL_ERROR_INVALID_ERROR_CODE
from ssl import SSL_ERROR_SSL as SSL_ERROR_SSL
from ssl import SSL_ERROR_SYSCALL as SSL_ERROR_SYSCALL
from ssl import SSL_ERROR_WANT_CONNECT as SSL_ERROR_WANT_CONNECT
from ssl import SSL_ERROR_WANT_READ as SSL_ERROR_WANT_READ
from ssl import SSL_ERROR_WANT_WRITE as SSL_ERROR_WANT_WRITE
from ssl import SSL_ERROR_WANT_X509_LOOKUP as SSL_ERROR_WANT_X509_LOOKUP
from ssl import SSL_ERROR_ZERO_RETURN as SSL_ERROR_ZERO_RETURN
from ssl import VERIFY_ALLOW_PROXY_CERTS as VERIFY_ALLOW_PROXY_CERTS
from ssl import VERIFY_CRL_CHECK_CHAIN as VERIFY_CRL_CHECK_CHAIN
from ssl import VERIFY_CRL_CHECK_LEAF as VERIFY_CRL_CHECK_LEAF
from ssl import VERIFY_DEFAULT as VERIFY_DEFAULT
from ssl import VERIFY_X509_PARTIAL_CHAIN as VERIFY_X509_PARTIAL_CHAIN
from ssl import VERIFY_X509_STRICT as VERIFY_X509_STRICT
from ssl import VERIFY_X509_TRUSTED_FIRST as VERIFY_X509_TRUSTED_FIRST
from ssl import AlertDescription as AlertDescription
from ssl import CertificateError as CertificateError
from ssl import DefaultVerifyPaths as DefaultVerifyPaths
from ssl import DER_cert_to_PEM_cert as DER_cert_to_PEM_cert
from ssl import HAS_SSLv2 as HAS_SSLv2
from ssl import HAS_SSLv3 as HAS_SSLv3
from ssl import HAS_TLSv1 as HAS_TLSv1
from ssl import HAS_TLSv1_1 as HAS_TLSv1_1
from ssl import HAS_TLSv1_2 as HAS_TLSv1_2
from ssl import HAS_TLSv1_3 as HAS_TLSv1_3
from ssl import MemoryBIO as MemoryBIO
from ssl import OP_NO_SSLv2 as OP_NO_SSLv2
from ssl import OP_NO_SSLv3 as OP_NO_SSLv3
from ssl import OP_NO_TLSv1 as OP_NO_TLSv1
from ssl import OP_NO_TLSv1_1 as OP_NO_TLSv1_1
from ssl import OP_NO_TLSv1_2 as OP_NO_TLSv1_2
from ssl import OP_NO_TLSv1_3 as OP_NO_TLSv1_3
from ssl import Options as Options
from ssl import PEM_cert_to_DER_cert as PEM_cert_to_DER_cert
from ssl import PROTOCOL_SSLv23 as PROTOCOL_SSLv23
from ssl import PROTOCOL_TLSv1 as PROTOCOL_TLSv1
from ssl import PROTOCOL_TLSv1_1 as PROTOCOL_TLSv1_1
from ssl import PROTOCOL_TLSv1_2 as PROTOCOL_TLSv1_2
from ssl import Purpose as Purpose
from ssl import RAND_add as RAND_add
from ssl import RAND_bytes as RAND_bytes
from ssl import RAND_pseudo_bytes as RAND_pseudo_bytes
from ssl import RAND_status as RAND_status
from ssl import SSLCertVerificationError as SSLCertVerificationError
from ssl import SSLEOFError as SSLEOFError
from ssl import SSLError as SSLError
from ssl import SSLErrorNumber as SSLErrorNumber
from ssl import SSLObject as SSLObject
from ssl import SSLSession as SSLSession
from ssl import SSLSyscallError as SSLSyscallError
from ssl import SSLWantReadError as SSLWantReadError
from ssl import SSLWantWriteError as SSLWantWriteError
from ssl import SSLZeroReturnError as SSLZeroReturnError
from ssl import TLSVersion as TLSVersion
from ssl import VerifyFlags as VerifyFlags
from ssl import VerifyMode as VerifyMode
from ssl import cert_time_to_seconds as cert_time_to_seconds
from ssl import get_default_verify_paths as get_default_verify_paths
from ssl import get_protocol_name as get_protocol_name
from ssl import match_hostname as match_hostname
from ssl import socket_error as socket_error
from typing import Any

from . import socket as _gsocket

__implements__: list[str]
__all__ = [
    "ALERT_DESCRIPTION_ACCESS_DENIED",
    "ALERT_DESCRIPTION_BAD_CERTIFICATE",
    "ALERT_DESCRIPTION_BAD_CERTIFICATE_HASH_VALUE",
    "ALERT_DESCRIPTION_BAD_CERTIFICATE_STATUS_RESPONSE",
    "ALERT_DESCRIPTION_BAD_RECORD_MAC",
    "ALERT_DESCRIPTION_CERTIFICATE_EXPIRED",
    "ALERT_DESCRIPTION_CERTIFICATE_REVOKED",
    "ALERT_DESCRIPTION_CERTIFICATE_UNKNOWN",
    "ALERT_DESCRIPTION_CERTIFICATE_UNOBTAINABLE",
    "ALERT_DESCRIPTION_CLOSE_NOTIFY",
    "ALERT_DESCRIPTION_DECODE_ERROR",
    "ALERT_DESCRIPTION_DECOMPRESSION_FAILURE",
    "ALERT_DESCRIPTION_DECRYPT_ERROR",
    "ALERT_DESCRIPTION_HANDSHAKE_FAILURE",
    "ALERT_DESCRIPTION_ILLEGAL_PARAMETER",
    "ALERT_DESCRIPTION_INSUFFICIENT_SECURITY",
    "ALERT_DESCRIPTION_INTERNAL_ERROR",
    "ALERT_DESCRIPTION_NO_RENEGOTIATION",
    "ALERT_DESCRIPTION_PROTOCOL_VERSION",
    "ALERT_DESCRIPTION_RECORD_OVERFLOW",
    "ALERT_DESCRIPTION_UNEXPECTED_MESSAGE",
    "ALERT_DESCRIPTION_UNKNOWN_CA",
    "ALERT_DESCRIPTION_UNKNOWN_PSK_IDENTITY",
    "ALERT_DESCRIPTION_UNRECOGNIZED_NAME",
    "ALERT_DESCRIPTION_UNSUPPORTED_CERTIFICATE",
    "ALERT_DESCRIPTION_UNSUPPORTED_EXTENSION",
    "ALERT_DESCRIPTION_USER_CANCELLED",
    "CERT_NONE",
    "CERT_OPTIONAL",
    "CERT_REQUIRED",
    "CHANNEL_BINDING_TYPES",
    "HAS_ALPN",
    "HAS_ECDH",
    "HAS_NEVER_CHECK_COMMON_NAME",
    "HAS_NPN",
    "HAS_SNI",
    "OPENSSL_VERSION",
    "OPENSSL_VERSION_INFO",
    "OPENSSL_VERSION_NUMBER",
    "OP_ALL",
    "OP_CIPHER_SERVER_PREFERENCE",
    "OP_ENABLE_MIDDLEBOX_COMPAT",
    "OP_IGNORE_UNEXPECTED_EOF",
    "OP_NO_COMPRESSION",
    "OP_NO_RENEGOTIATION",
    "OP_NO_TICKET",
    "OP_SINGLE_DH_USE",
    "OP_SINGLE_ECDH_USE",
    "PEM_FOOTER",
    "PEM_HEADER",
    "PROTOCOL_TLS",
    "PROTOCOL_TLS_CLIENT",
    "PROTOCOL_TLS_SERVER",
    "SOCK_STREAM",
    "SOL_SOCKET",
    "SO_TYPE",
    "SSL_ERROR_EOF",
    "SSL_ERROR_INVALID_ERROR_CODE",
    "SSL_ERROR_SSL",
    "SSL_ERROR_SYSCALL",
    "SSL_ERROR_WANT_CONNECT",
    "SSL_ERROR_WANT_READ",
    "SSL_ERROR_WANT_WRITE",
    "SSL_ERROR_WANT_X509_LOOKUP",
    "SSL_ERROR_ZERO_RETURN",
    "VERIFY_ALLOW_PROXY_CERTS",
    "VERIFY_CRL_CHECK_CHAIN",
    "VERIFY_CRL_CHECK_LEAF",
    "VERIFY_DEFAULT",
    "VERIFY_X509_PARTIAL_CHAIN",
    "VERIFY_X509_STRICT",
    "VERIFY_X509_TRUSTED_FIRST",
    "AlertDescription",
    "CertificateError",
    "DER_cert_to_PEM_cert",
    "DefaultVerifyPaths",
    "HAS_SSLv2",
    "HAS_SSLv3",
    "HAS_TLSv1",
    "HAS_TLSv1_1",
    "HAS_TLSv1_2",
    "HAS_TLSv1_3",
    "MemoryBIO",
    "OP_NO_SSLv2",
    "OP_NO_SSLv3",
    "OP_NO_TLSv1",
    "OP_NO_TLSv1_1",
    "OP_NO_TLSv1_2",
    "OP_NO_TLSv1_3",
    "Options",
    "PEM_cert_to_DER_cert",
    "PROTOCOL_SSLv23",
    "PROTOCOL_TLSv1",
    "PROTOCOL_TLSv1_1",
    "PROTOCOL_TLSv1_2",
    "Purpose",
    "RAND_add",
    "RAND_bytes",
    "RAND_pseudo_bytes",
    "RAND_status",
    "SSLCertVerificationError",
    "SSLContext",
    "SSLEOFError",
    "SSLError",
    "SSLErrorNumber",
    "SSLObject",
    "SSLSession",
    "SSLSocket",
    "SSLSyscallError",
    "SSLWantReadError",
    "SSLWantWriteError",
    "SSLZeroReturnError",
    "TLSVersion",
    "VerifyFlags",
    "VerifyMode",
    "cert_time_to_seconds",
    "create_default_context",
    "get_default_verify_paths",
    "get_protocol_name",
    "get_server_certificate",
    "match_hostname",
    "socket_error",
    "wrap_socket",
]

class SSLContext(_stdssl.SSLContext):
    sslsocket_class: Any

class SSLSocket(_stdssl.SSLSocket, _gsocket.socket):
    def do_handshake(self, block: bool = False) -> None: ...
    def read(self, len: int = 1024, buffer: Any = None) -> Any: ...
    def write(self, data: Any) -> int: ...
    def send(self, data: Any, flags: int = 0) -> int: ...
    def unwrap(self) -> Any: ...
    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int: ...

def wrap_socket(
    sock: Any,
    keyfile: str | None = None,
    certfile: str | None = None,
    server_side: bool = False,
    cert_reqs: int = ...,
    ssl_version: int | None = None,
    ca_certs: str | None = None,
    do_handshake_on_connect: bool = True,
    suppress_ragged_eofs: bool = True,
    ciphers: str | None = None,
) -> SSLSocket: ...
def create_default_context(
    purpose: _stdssl.Purpose = ...,
    *,
    cafile: str | None = None,
    capath: str | None = None,
    cadata: str | bytes | None = None,
) -> SSLContext: ...
def get_server_certificate(
    addr: tuple[str, int], ssl_version: int = ..., ca_certs: str | None = None, timeout: float = ...
) -> str: ...
