"""Starts ``chekt-sandbox serve`` processes for the crash tests without paying for Python's
imports each time: this process imports the CLI once, then forks one child per request, and
each child runs exactly what the console script runs (``main`` with the same arguments).

Talks line by line on stdin/stdout: ``serve ["--port", "8765", ...]`` (serve's arguments as
JSON) answers the child's pid; ``wait PID`` reaps that child (once the test has signalled it)
and answers ``done``."""

from __future__ import annotations

import json
import os
import sys

from sandbox.cli import main


def _serve(args: list[str]) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        main(["serve", *args], prog_name="chekt-sandbox")
    finally:
        os._exit(0)


def run() -> None:
    for line in sys.stdin:
        verb, _, rest = line.partition(" ")
        if verb == "serve":
            pid = os.fork()
            if pid == 0:
                _serve(json.loads(rest))
            print(pid, flush=True)
        elif verb == "wait":
            os.waitpid(int(rest), 0)
            print("done", flush=True)


if __name__ == "__main__":
    run()
