"""Run a list of training commands one at a time; safe to stop and re-run.

    python3 -m pctrain.queue --file queue.txt --runs runs

`queue.txt` holds one shell-style command a line (`#` starts a comment, blank
lines are ignored), e.g. the lines `pctrain.matched --print-commands`
prints. The commands run in order from the current directory, each with no
terminal (stdin is /dev/null, a session of its own) and its stdout and
stderr appended to `<runs>/queue.log` under a header naming it; its exit
code and duration follow it there.

A command whose `--out` directory already holds `final.pt` is skipped:
`pctrain.train` and `pctrain.grow` write it last, and both leave such a run
as it is. A command that stopped part-way resumes by itself when run again
(both scripts continue from their `last.pt`). A command without `--out` is
run every time. The first command that fails stops the queue with a message
and a non-zero exit; the commands before it stay finished, so re-running the
queue after the fix goes on from there. Stopping the queue (SIGTERM or
Ctrl-C) stops the running command too. Only one queue runs per `--runs`
directory at a time (a lock on `<runs>/queue.lock`).
"""
from __future__ import annotations

import argparse
import fcntl
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

FINAL = "final.pt"


@dataclass(frozen=True)
class Command:
    line: int           # line number in the queue file
    argv: list[str]

    @property
    def text(self) -> str:
        return shlex.join(self.argv)

    @property
    def out(self) -> Path | None:
        """The command's `--out` directory, if it has one."""
        for i, a in enumerate(self.argv):
            if a == "--out" and i + 1 < len(self.argv):
                return Path(self.argv[i + 1])
            if a.startswith("--out="):
                return Path(a[len("--out="):])
        return None

    def finished(self, cwd: Path) -> bool:
        out = self.out
        return out is not None and ((cwd / out) / FINAL).exists()


def read_queue(path: Path) -> list[Command]:
    """The commands of a queue file: one a line, `#` comments and blank lines dropped."""
    cmds = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        argv = shlex.split(raw, comments=True)
        if argv:
            cmds.append(Command(n, argv))
    return cmds


class QueueFailed(Exception):
    pass


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def run_queue(queue: Path, runs: Path, cwd: Path | None = None, say=print, dry_run: bool = False) -> dict:
    """Run `queue`'s unfinished commands in order; raises QueueFailed at the first failure."""
    cwd = Path(cwd or Path.cwd())
    cmds = read_queue(queue)
    runs.mkdir(parents=True, exist_ok=True)
    log_path = runs / "queue.log"
    lock = open(runs / "queue.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise QueueFailed(f"another queue is running on {runs} (it holds {runs / 'queue.lock'})")
    done = {"ran": [], "skipped": []}
    try:
        for i, c in enumerate(cmds, 1):
            tag = f"[{i}/{len(cmds)}] {queue.name}:{c.line}"
            if c.finished(cwd):
                say(f"{tag} skip, finished ({c.out / FINAL} exists): {c.text}")
                done["skipped"].append(c.line)
                continue
            if dry_run:
                say(f"{tag} would run: {c.text}")
                continue
            say(f"{tag} run: {c.text}")
            with open(log_path, "a") as log:
                log.write(f"\n===== {_stamp()} {tag} start (cwd {cwd})\n===== {c.text}\n")
                log.flush()
                t0 = time.time()
                rc = _run(c.argv, cwd, log)
                log.write(f"===== {_stamp()} {tag} exit {rc} after {time.time() - t0:.0f} s\n")
            if rc != 0:
                raise QueueFailed(f"{tag} failed with exit code {rc}: {c.text}\n"
                                  f"its output is at the end of {log_path}; the queue stopped here "
                                  f"(re-run it after the fix: finished commands are skipped)")
            done["ran"].append(c.line)
    finally:
        lock.close()
    return done


_child: subprocess.Popen | None = None
_stopped_by: int | None = None


def _run(argv: list[str], cwd: Path, log) -> int:
    """Run one command with no terminal, its output into `log`; its exit code (127: not found)."""
    global _child
    try:
        _child = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    except OSError as e:
        log.write(f"cannot start: {e}\n")
        return 127
    try:
        rc = _child.wait()
    finally:
        _child = None
    if _stopped_by is not None:
        log.write(f"===== {_stamp()} the queue was stopped (signal {_stopped_by}); the command exited {rc}\n")
        raise SystemExit(128 + _stopped_by)
    return rc


def _stop(signum, _frame):
    """Stop the running command (it resumes from its last checkpoint next time), then the queue."""
    global _stopped_by
    _stopped_by = signum
    if _child is None:
        raise SystemExit(128 + signum)
    _child.terminate()  # _run sees it exit and stops the queue


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file", type=Path, required=True, help="the queue: one command a line, # comments")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="where queue.log and queue.lock go")
    p.add_argument("--dry-run", action="store_true", help="only say what would be skipped and run")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        done = run_queue(a.file, a.runs, dry_run=a.dry_run)
    except QueueFailed as e:
        print(f"queue stopped: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"queue done: {len(done['ran'])} ran, {len(done['skipped'])} skipped as finished")


if __name__ == "__main__":
    main()
