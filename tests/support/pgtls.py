"""A private PostgreSQL server with TLS for one test: its own data directory, its own CA
and server certificate (made with openssl), listening on 127.0.0.1 on a free port, TLS
required by pg_hba (hostssl only). The shared server on 5432 is never touched.

initdb refuses to run as root: as root the cluster belongs to the ``postgres`` account
(Popen(user='postgres')) in a directory that account owns."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class ServerUnavailable(RuntimeError):
    pass


def _bin_dir() -> Path:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0)
    for d in reversed(dirs):
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return Path(d)
    raise ServerUnavailable("no PostgreSQL server binaries (initdb, postgres) under "
                            "/usr/lib/postgresql/*/bin: scripts/bootstrap.sh installs them")


def _tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise ServerUnavailable(f"openssl {' '.join(args[:2])} failed: {r.stderr[-500:]}")


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN=pypmacct test {name}", "-keyout", str(key), "-out", str(crt),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    return crt, key


def make_server_cert(directory: Path, ca: tuple[Path, Path], cn: str = "127.0.0.1",
                     san: str = "IP:127.0.0.1,DNS:localhost") -> tuple[Path, Path]:
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
             "-keyout", str(key), "-out", str(csr), cwd=directory)
    ext = directory / "server.ext"
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt),
             cwd=directory)
    return crt, key


class _PrivateServer:
    """A database server this test process started: stopped by its own signal (then
    killed after a bound) and its directory removed."""
    STOP_SIGNAL = signal.SIGTERM
    STOP_WAIT = 20
    proc = None
    base = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, self.STOP_SIGNAL)
            try:
                self.proc.wait(timeout=self.STOP_WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.base:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None


class TlsPostgres(_PrivateServer):
    """``start()`` → initdb, certificates, postgres with ssl=on; ``stop()`` by PID."""

    user = "postgres"
    password = "pypm_tls_pw"

    def __init__(self, cn: str = "127.0.0.1", san: str = "IP:127.0.0.1,DNS:localhost"):
        self.cn, self.san = cn, san
        self.proc: subprocess.Popen | None = None
        self.base: Path | None = None
        self.port = 0

    def _as_owner(self) -> dict:
        # Popen(user=...) rather than runuser: postgres stays our direct child (its PID)
        if os.geteuid() == 0:
            return dict(user="postgres", group="postgres", extra_groups=[], cwd=str(self.base))
        return {}

    def start(self, timeout: float = 15.0) -> "TlsPostgres":
        bindir = _bin_dir()
        self.base = Path(tempfile.mkdtemp(prefix="pypm_pgtls_"))
        os.chmod(self.base, 0o755)
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable("running as root and there is no 'postgres' "
                                        "account to own a private cluster") from None
        self.certs = self.base / "certs"
        self.certs.mkdir()
        self.ca = make_ca(self.certs, "ca")
        self.other_ca = make_ca(self.certs, "other-ca")
        crt, key = make_server_cert(self.certs, self.ca, self.cn, self.san)
        for p in self.certs.iterdir():
            os.chmod(p, 0o644)
        os.chmod(key, 0o600)
        data = self.base / "data"
        pwfile = self.base / "pw"
        pwfile.write_text(self.password + "\n")
        if owner:
            for p in [self.base, self.certs, key, pwfile]:
                os.chown(p, owner.pw_uid, owner.pw_gid)
        r = subprocess.run([
            str(bindir / "initdb"), "-D", str(data), "-U", self.user, "-A", "scram-sha-256",
            f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8", "--locale=C"],
            capture_output=True, text=True, **self._as_owner())
        if r.returncode:
            raise ServerUnavailable(f"initdb failed: {(r.stdout + r.stderr)[-1500:]}")
        # TLS only: any plain TCP login is refused by pg_hba
        (data / "pg_hba.conf").write_text(
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostnossl all all 0.0.0.0/0 reject\n")
        self.port = _tcp_port()
        self.logfile = self.base / "postgres.log"
        log = open(self.logfile, "w")
        if owner:
            os.chown(self.logfile, owner.pw_uid, owner.pw_gid)
        self.proc = subprocess.Popen([
            str(bindir / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.base),
            "-c", "listen_addresses=127.0.0.1", "-c", "ssl=on",
            "-c", f"ssl_cert_file={crt}", "-c", f"ssl_key_file={key}",
            "-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=40"],
            stdout=log, stderr=subprocess.STDOUT, **self._as_owner())
        log.close()
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                text = self.logfile.read_text()[-1500:]
                self.stop()
                raise ServerUnavailable(f"postgres exited ({self.proc.returncode}): {text}")
            try:
                self.connect("postgres", sslmode="verify-ca").close()
                return self
            except Exception as e:
                if time.monotonic() > end:
                    text = self.logfile.read_text()[-1500:]
                    self.stop()
                    raise ServerUnavailable(f"postgres not ready in {timeout} s: {e}; "
                                            f"log: {text}")
                time.sleep(0.1)

    def connect(self, dbname: str, sslmode: str = "verify-full"):
        import psycopg2
        return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user,
                                password=self.password, dbname=dbname, sslmode=sslmode, sslrootcert=str(self.ca[0]),
                                connect_timeout=3)

    STOP_SIGNAL = signal.SIGINT     # postgres's fast shutdown
    STOP_WAIT = 15


class TlsMariadb(_PrivateServer):
    """The same for MariaDB: mariadb-install-db into a fresh directory (owned by the
    ``mysql`` account when run as root), mariadbd on 127.0.0.1 on a free port with the
    test's certificates, and a user that must log in with TLS (REQUIRE SSL)."""

    user = "pypm_tls"
    password = "pypm_tls_pw"

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.base: Path | None = None
        self.port = 0

    def start(self, timeout: float = 15.0) -> "TlsMariadb":
        install, server = shutil.which("mariadb-install-db"), shutil.which("mariadbd")
        if not install or not server:
            raise ServerUnavailable("mariadb-install-db / mariadbd not found: "
                                    "scripts/bootstrap.sh installs mariadb-server")
        self.base = Path(tempfile.mkdtemp(prefix="pypm_mytls_"))
        os.chmod(self.base, 0o755)
        self.certs = self.base / "certs"
        self.certs.mkdir()
        self.ca = make_ca(self.certs, "ca")
        self.other_ca = make_ca(self.certs, "other-ca")
        crt, key = make_server_cert(self.certs, self.ca)
        for p in self.certs.iterdir():
            os.chmod(p, 0o644)
        os.chmod(key, 0o600)
        run_as = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("mysql")
            except KeyError:
                raise ServerUnavailable("running as root and there is no 'mysql' account") \
                    from None
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
            os.chown(key, owner.pw_uid, owner.pw_gid)
            run_as = ["--user=mysql"]
        data = self.base / "data"
        r = subprocess.run([install, "--no-defaults", f"--datadir={data}", *run_as,
                            "--auth-root-authentication-method=normal", "--skip-test-db"],
                           capture_output=True, text=True)
        if r.returncode:
            raise ServerUnavailable(f"mariadb-install-db failed: {(r.stdout + r.stderr)[-1500:]}")
        self.port = _tcp_port()
        self.sock = self.base / "sock"
        self.errlog = self.base / "err.log"
        self.proc = subprocess.Popen([
            server, "--no-defaults", f"--datadir={data}", *run_as, f"--port={self.port}",
            "--bind-address=127.0.0.1", f"--socket={self.sock}",
            f"--pid-file={self.base / 'pid'}", f"--log-error={self.errlog}",
            f"--ssl-ca={self.ca[0]}", f"--ssl-cert={crt}", f"--ssl-key={key}",
            "--innodb-buffer-pool-size=16M", "--skip-name-resolve"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import MySQLdb
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                text = self.errlog.read_text()[-1500:] if self.errlog.exists() else ""
                self.stop()
                raise ServerUnavailable(f"mariadbd exited: {text}")
            try:
                c = MySQLdb.connect(unix_socket=str(self.sock), user="root")
                break
            except Exception as e:
                if time.monotonic() > end:
                    text = self.errlog.read_text()[-1500:] if self.errlog.exists() else ""
                    self.stop()
                    raise ServerUnavailable(f"mariadbd not ready in {timeout} s: {e}; {text}")
                time.sleep(0.1)
        cur = c.cursor()
        cur.execute(f"CREATE USER '{self.user}'@'127.0.0.1' IDENTIFIED BY "
                    f"'{self.password}' REQUIRE SSL")
        cur.execute(f"GRANT ALL ON *.* TO '{self.user}'@'127.0.0.1'")
        cur.execute("CREATE DATABASE pypm_tls")
        c.close()
        return self

    def connect(self, dbname: str):
        import MySQLdb
        return MySQLdb.connect(host="127.0.0.1", port=self.port, user=self.user,
                               passwd=self.password, db=dbname, ssl={"ca": str(self.ca[0])})

