"""`python -m dev.local_aws up|down|status`: the local stack's command line (`make up`/`make down`)."""

from __future__ import annotations

import argparse
import sys
import time

from dev.local_aws import stack


def _say(message: str) -> None:
    print(f"stack: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.local_aws", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "up":
            stack.ensure_up(say=_say)
            _say(f"up in {time.monotonic() - started:.1f} s")
        elif args.command == "down":
            stack.down(say=_say)
        else:
            for key, value in stack.status().items():
                _say(f"{key}: {value}")
    except stack.StackError as exc:
        print(f"stack: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
