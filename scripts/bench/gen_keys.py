#!/usr/bin/env python3
"""Generate exactly N distinct `SET key:<i> <value>` commands as RESP, for `redis-cli --pipe`.

    gen_keys.py N [VALUE_SIZE]            RESP on stdout
    gen_keys.py --raw-bytes N [VALUE_SIZE] prints sum(len(key) + len(value)) over the N keys
"""
import sys


def value_for(i: int, size: int) -> bytes:
    # Distinct, deterministic, exactly `size` bytes (no compression tricks either way).
    head = b"v%d-" % i
    return (head + b"x" * size)[:size]


def main() -> int:
    args = sys.argv[1:]
    raw = False
    if args and args[0] == "--raw-bytes":
        raw = True
        args = args[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    n = int(args[0])
    size = int(args[1]) if len(args) > 1 else 100
    if raw:
        print(sum(len(b"key:%d" % i) + size for i in range(n)))
        return 0
    out = sys.stdout.buffer
    buf = []
    for i in range(n):
        k = b"key:%d" % i
        v = value_for(i, size)
        buf.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
        if len(buf) >= 10000:
            out.write(b"".join(buf))
            buf.clear()
    out.write(b"".join(buf))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
