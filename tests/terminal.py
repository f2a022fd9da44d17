"""Run a command on a pseudo-terminal of its own, answering its prompts as a person at a keyboard would."""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from collections.abc import Mapping, Sequence

PROMPTS = (b"Password: ", b"Repeat for confirmation: ")


def run_in_terminal(args: Sequence[str], answers: Sequence[str], env: Mapping[str, str], *,
                    timeout_s: float = 60) -> tuple[int, str]:
    """Exit code and everything the terminal showed. The terminal is the command's controlling terminal,
    so ``getpass`` reads from it with echo off; each password prompt gets the next answer."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec, never return into pytest
        try:
            os.execvpe(args[0], list(args), dict(env))
        finally:
            os._exit(127)
    out = b""
    answered = 0
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            prompts = sum(out.count(p) for p in PROMPTS)
            if prompts > answered and answered < len(answers) and out.endswith(b": "):
                os.write(fd, answers[answered].encode() + b"\n")
                answered += 1
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace").replace("\r\n", "\n")
