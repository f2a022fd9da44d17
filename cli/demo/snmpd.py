"""A private net-snmp agent (Debian's ``snmpd``) on a loopback port, for the demo and the tests.

It runs in the foreground as a child process with its own configuration and state directory, so
it never touches a system agent: read-only v2c community, optional v3 users, the whole MIB tree.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from netpulse.errors import NetPulseError

SYS_NAME_OID = ".1.3.6.1.2.1.1.5.0"
_SBIN = "/usr/sbin:/usr/local/sbin"
# net-snmp loads every MIB it can find at start unless told not to: slow and noisy.
QUIET_ENV = {"MIBS": "", "MIBDIRS": ""}


def find_snmpd() -> str | None:
    return shutil.which("snmpd") or shutil.which("snmpd", path=_SBIN)


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LocalAgent:
    port: int
    community: str
    directory: Path
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(cls, directory: Path, *, community: str, sys_name: str = "netpulse-demo", port: int | None = None,
              host: str = "127.0.0.1", extra_config: str = "", snmpd: str | None = None,
              wait_s: float = 15.0) -> LocalAgent:
        """Start the agent and wait until it answers; raises NetPulseError when it cannot."""
        binary = snmpd or find_snmpd()
        if binary is None:
            raise NetPulseError("snmpd is not installed (Debian: apt-get install snmpd)")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "persist").mkdir(exist_ok=True)
        conf = directory / "snmpd.conf"
        conf.write_text(f"rocommunity {community} {host}\nsysName {sys_name}\n"
                        f"sysLocation this machine\n{extra_config}")
        agent = cls(port or free_udp_port(host), community, directory, host)
        env = {**os.environ, **QUIET_ENV, "SNMP_PERSISTENT_DIR": str(directory / "persist")}
        with open(directory / "snmpd.log", "wb") as log:
            agent.process = subprocess.Popen(
                [binary, "-f", "-LOn", "-C", "-c", str(conf), "-p", str(directory / "snmpd.pid"),
                 f"udp:{host}:{agent.port}"], env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # Ctrl-C reaches the demo, which stops the agent itself
        try:
            agent._wait(wait_s)
        except BaseException:
            agent.stop()
            raise
        return agent

    def _wait(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while not self.answers():
            assert self.process is not None
            if self.process.poll() is not None:
                raise NetPulseError(f"snmpd exited with status {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise NetPulseError(f"snmpd did not answer on udp/{self.host}:{self.port}: {self.log_tail()}")
            time.sleep(0.1)

    def answers(self) -> bool:
        """One SNMP GET of sysName.0 over UDP, by hand (no tools needed): any response counts."""
        from pysnmp.proto import api

        proto = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
        pdu = proto.GetRequestPDU()
        proto.apiPDU.set_defaults(pdu)
        proto.apiPDU.set_varbinds(pdu, [(proto.ObjectIdentifier(SYS_NAME_OID[1:]), proto.Null(""))])
        msg = proto.Message()
        proto.apiMessage.set_defaults(msg)
        proto.apiMessage.set_community(msg, self.community)
        proto.apiMessage.set_pdu(msg, pdu)
        from pyasn1.codec.ber import encoder

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            try:
                s.sendto(encoder.encode(msg), (self.host, self.port))
                return len(s.recv(65535)) > 0
            except OSError:
                return False

    def log_tail(self, n: int = 500) -> str:
        try:
            return (self.directory / "snmpd.log").read_text(errors="replace")[-n:].strip()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
