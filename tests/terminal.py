"""Run a command on a pseudo-terminal of its own, answering its prompts as a person at a keyboard would."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time
from collections.abc import Callable, Mapping, Sequence

_PROMPT = re.compile(rb"([^\n]*?): $")


def run_in_terminal(args: Sequence[str], answer: Callable[[str], str], env: Mapping[str, str], *,
                    cwd: str | None = None, timeout_s: float = 60) -> tuple[int, str]:
    """Exit code and everything the terminal showed.

    The terminal is the command's controlling terminal, so ``getpass`` reads from it with echo off.
    Each prompt (a last line ending in ``": "``) is answered with ``answer(label)``, e.g.
    ``answer("Password")``. A command still running after ``timeout_s`` is killed.
    """
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec, never return into pytest
        try:
            if cwd is not None:
                os.chdir(cwd)
            os.execvpe(args[0], list(args), dict(env))
        finally:
            os._exit(127)
    out = b""
    answered_at = 0
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
            last_line = out[out.rfind(b"\n") + 1:]
            prompt = _PROMPT.fullmatch(last_line)
            if prompt and len(out) > answered_at:
                os.write(fd, answer(prompt.group(1).decode().strip()).encode() + b"\n")
                answered_at = len(out)
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace").replace("\r\n", "\n")


def typist(answers: Mapping[str, str]) -> Callable[[str], str]:
    """Answers by prompt label; a confirmation prompt gets the previous answer again."""
    last = ""

    def answer(label: str) -> str:
        nonlocal last
        if label != "Repeat for confirmation":
            last = answers[label]
        return last

    return answer
