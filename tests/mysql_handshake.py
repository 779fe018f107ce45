# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small fake MySQL 8 server that makes every client take caching_sha2_password's *full*
authentication over plain TCP, the path a fresh ``mysql:8.4`` account takes while the
server has no cached login for it (bug B1: that path needs the client's ``cryptography``).

Protocol (MySQL source docs "Protocol::HandshakeV10", "Caching_sha2_password information";
PyMySQL's ``_auth.caching_sha2_password_auth``)::

    server  HandshakeV10, plugin caching_sha2_password, 20-byte nonce       seq 0
    client  HandshakeResponse41: user, SHA-256 scramble (the fast path)    seq 1
    server  AuthMoreData 0x01 0x04 (perform full authentication)            seq 2
    client  0x02 (request the server's public key)                          seq 3
    server  AuthMoreData 0x01 + PEM public key                              seq 4
    client  RSA-OAEP(SHA-1, MGF1-SHA-1)(password + NUL  XOR  nonce)          seq 5
    server  OK, or ERR 1045 (28000) access denied                           seq 6

After that, every COM_QUERY is answered with an OK packet (no result sets: enough for
connect, ``SET NAMES``, ``SET AUTOCOMMIT`` and ``COMMIT``) and COM_QUIT closes.
``bad_public_key=True`` sends a malformed PEM instead of the key, so the client's
``cryptography`` raises ValueError (not a pymysql MySQLError).

Pure Python plus ``cryptography`` (the test virtualenv's) for the RSA key. Usage::

    with FakeMySQLServer(user="shop", password="pw") as server:
        pymysql.connect(host="127.0.0.1", port=server.port, user="shop", password="pw")
        assert server.stats["full_auth_ok"] == 1
"""

from __future__ import annotations

import os
import socket
import struct
import threading

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# capability flags (include/mysql_com.h)
CLIENT_LONG_PASSWORD = 0x00000001
CLIENT_FOUND_ROWS = 0x00000002
CLIENT_LONG_FLAG = 0x00000004
CLIENT_CONNECT_WITH_DB = 0x00000008
CLIENT_PROTOCOL_41 = 0x00000200
CLIENT_TRANSACTIONS = 0x00002000
CLIENT_SECURE_CONNECTION = 0x00008000
CLIENT_MULTI_STATEMENTS = 0x00010000
CLIENT_MULTI_RESULTS = 0x00020000
CLIENT_PLUGIN_AUTH = 0x00080000
CLIENT_CONNECT_ATTRS = 0x00100000
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 0x00200000
SERVER_CAPABILITIES = (
    CLIENT_LONG_PASSWORD | CLIENT_FOUND_ROWS | CLIENT_LONG_FLAG | CLIENT_CONNECT_WITH_DB | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA)  # no CLIENT_SSL
SERVER_STATUS_AUTOCOMMIT = 0x0002
UTF8MB4_GENERAL_CI = 45
NONCE_LENGTH = 20
COM_QUIT = 0x01
COM_QUERY = 0x03
COM_PING = 0x0E
ER_ACCESS_DENIED_ERROR = 1045
ER_UNKNOWN_COM_ERROR = 1047
MALFORMED_PEM = b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"


def _lenenc_int(value: int) -> bytes:
    if value < 0xFB:
        return bytes([value])
    if value < 1 << 16:
        return b"\xfc" + struct.pack("<H", value)
    if value < 1 << 24:
        return b"\xfd" + struct.pack("<I", value)[:3]
    return b"\xfe" + struct.pack("<Q", value)


def _read_lenenc_int(data: bytes, i: int):
    first = data[i]
    if first < 0xFB:
        return first, i + 1
    if first == 0xFC:
        return struct.unpack("<H", data[i + 1:i + 3])[0], i + 3
    if first == 0xFD:
        return struct.unpack("<I", data[i + 1:i + 4] + b"\0")[0], i + 4
    return struct.unpack("<Q", data[i + 1:i + 9])[0], i + 9


def _nul_string(data: bytes, i: int):
    end = data.index(b"\0", i)
    return data[i:end], end + 1


class _ClientGone(Exception):
    """The client closed the connection."""


class _Connection:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.seq = 0

    def _recv_exact(self, count: int) -> bytes:
        chunks = []
        while count:
            chunk = self.sock.recv(count)
            if not chunk:
                raise _ClientGone()
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def read(self) -> bytes:
        header = self._recv_exact(4)
        length = header[0] | header[1] << 8 | header[2] << 16
        self.seq = (header[3] + 1) % 256
        return self._recv_exact(length)

    def write(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack("<I", len(payload))[:3] + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) % 256

    def ok(self) -> None:
        self.write(b"\x00" + _lenenc_int(0) + _lenenc_int(0) + struct.pack("<HH", SERVER_STATUS_AUTOCOMMIT, 0))

    def error(self, code: int, state: str, message: str) -> None:
        self.write(b"\xff" + struct.pack("<H", code) + b"#" + state.encode() + message.encode())


class FakeMySQLServer:
    """Listens on 127.0.0.1:<free port> (``port``) in a background thread until ``close()``.

    ``stats`` counts what the clients did: ``connections``, ``public_key_requests``,
    ``full_auth_ok`` (RSA payload decrypted and the password matched), ``full_auth_failed``,
    ``queries``; ``logins`` lists the (user, database) of each accepted login.
    """

    def __init__(self, user: str = "shop", password: str = "secret", bad_public_key: bool = False,
                 host: str = "127.0.0.1", server_version: str = "8.4.0-fake"):
        self.user = user
        self.password = password
        self.bad_public_key = bad_public_key
        self.server_version = server_version
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self._lock = threading.Lock()
        self.stats = {"connections": 0, "public_key_requests": 0, "full_auth_ok": 0, "full_auth_failed": 0,
                      "queries": 0}
        self.logins = []
        self.errors = []  # protocol surprises (a test can assert it stays empty)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(16)
        self.host, self.port = self._listener.getsockname()[:2]
        self._closed = threading.Event()
        self._thread_id = 0
        self._thread = threading.Thread(target=self._serve, name="fake-mysql", daemon=True)
        self._thread.start()

    # lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> "FakeMySQLServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self._thread.join(timeout=5)

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self.stats)

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._closed.is_set():
            try:
                sock, _peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(30)
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    # one client ----------------------------------------------------------------------------------
    def _handle(self, sock: socket.socket) -> None:
        self._count("connections")
        conn = _Connection(sock)
        try:
            if self._authenticate(conn):
                self._commands(conn)
        except (_ClientGone, OSError):
            pass
        except Exception as exc:  # a protocol surprise: record it for the test, drop the client
            self.errors.append(f"{exc.__class__.__name__}: {exc}")
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _handshake(self, nonce: bytes) -> bytes:
        with self._lock:
            self._thread_id += 1
            thread_id = self._thread_id
        return (bytes([10]) + self.server_version.encode() + b"\0" + struct.pack("<I", thread_id)
                + nonce[:8] + b"\0"
                + struct.pack("<HBHH", SERVER_CAPABILITIES & 0xFFFF, UTF8MB4_GENERAL_CI, SERVER_STATUS_AUTOCOMMIT,
                              SERVER_CAPABILITIES >> 16)
                + bytes([NONCE_LENGTH + 1]) + b"\0" * 10
                + nonce[8:] + b"\0"  # part 2: MAX(13, 21 - 8) = 12 bytes of nonce + NUL
                + b"caching_sha2_password\0")

    @staticmethod
    def _parse_response(data: bytes):
        flags = struct.unpack("<I", data[:4])[0]
        if not flags & CLIENT_PROTOCOL_41:
            raise ValueError("client did not send a HandshakeResponse41")
        i = 4 + 4 + 1 + 23
        user, i = _nul_string(data, i)
        if flags & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
            length, i = _read_lenenc_int(data, i)
        else:
            length, i = data[i], i + 1
        auth = data[i:i + length]
        i += length
        database = b""
        if flags & CLIENT_CONNECT_WITH_DB and i < len(data):
            database, i = _nul_string(data, i)
        plugin = b""
        if flags & CLIENT_PLUGIN_AUTH and i < len(data):
            plugin, i = _nul_string(data, i)
        return user.decode(), auth, database.decode(), plugin.decode()

    def _authenticate(self, conn: _Connection) -> bool:
        nonce = bytes(byte % 0x7F or 1 for byte in os.urandom(NONCE_LENGTH))  # no NUL in the scramble
        conn.write(self._handshake(nonce))
        user, scramble, database, plugin = self._parse_response(conn.read())
        if plugin != "caching_sha2_password" or len(scramble) != 32:
            raise ValueError(f"expected a caching_sha2_password fast-path scramble, got plugin {plugin!r} "
                             f"and {len(scramble)} bytes")
        conn.write(b"\x01\x04")  # no cached login: perform full authentication
        packet = conn.read()
        if packet != b"\x02":
            raise ValueError(f"expected a public key request (0x02), got {packet[:8]!r}")
        self._count("public_key_requests")
        conn.write(b"\x01" + (MALFORMED_PEM if self.bad_public_key else self.public_pem))
        encrypted = conn.read()
        try:
            plain = self._key.decrypt(encrypted, padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()),
                                                              algorithm=hashes.SHA1(), label=None))
        except ValueError:
            plain = None
        if plain is not None:
            plain = bytes(byte ^ nonce[index % NONCE_LENGTH] for index, byte in enumerate(plain))
        if user == self.user and plain == self.password.encode() + b"\0":
            self._count("full_auth_ok")
            with self._lock:
                self.logins.append((user, database))
            conn.ok()
            return True
        self._count("full_auth_failed")
        conn.error(ER_ACCESS_DENIED_ERROR, "28000",
                   f"Access denied for user '{user}'@'localhost' (using password: YES)")
        return False

    def _commands(self, conn: _Connection) -> None:
        while not self._closed.is_set():
            packet = conn.read()  # a new command: seq restarts at 0, the reply is 1
            command = packet[:1]
            if command == bytes([COM_QUIT]):
                return
            if command == bytes([COM_QUERY]):
                self._count("queries")
                conn.ok()
            elif command == bytes([COM_PING]):
                conn.ok()
            else:
                conn.error(ER_UNKNOWN_COM_ERROR, "08S01", "Unknown command")
