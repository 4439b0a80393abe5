#!/usr/bin/env python3
"""How long an fdatasync takes on this disk, alone and with other writers flushing at once.

Each of WRITERS processes overwrites PAGES pages of 4 KiB of its own file (preallocated, so no
block allocation is measured) and fdatasyncs it, COMMITS times; prints the median and p99 of
the fdatasync per process. One writer is what a node of a cluster on separate machines pays
for a log commit; three is what the nodes of a cluster on one machine pay when they commit
together (kvd's 3-node benchmarks).

    scripts/fsync-latency.py [WRITERS] [PAGES] [COMMITS] [DIR]   (default 1 7 2000 .)
    for w in 1 3; do scripts/fsync-latency.py $w 7; done

DIR should be on the filesystem of the data dirs; the files are removed afterwards.
"""
import multiprocessing as mp
import os
import sys
import tempfile
import time

PAGE = 4096
FILE_PAGES = 512


def writer(directory: str, pages: int, commits: int, out: "mp.Queue[tuple[float, float]]") -> None:
    fd, path = tempfile.mkstemp(prefix="fsync-latency-", dir=directory)
    try:
        block = os.urandom(PAGE)
        for p in range(FILE_PAGES):
            os.pwrite(fd, block, p * PAGE)
        os.fsync(fd)
        lat = []
        for c in range(commits):
            for j in range(pages):
                os.pwrite(fd, block, ((c * pages + j) % FILE_PAGES) * PAGE)
            t = time.perf_counter()
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1e3)
        lat.sort()
        out.put((lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]))
    finally:
        os.close(fd)
        os.unlink(path)


def main() -> int:
    args = sys.argv[1:]
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    writers = int(args[0]) if len(args) > 0 else 1
    pages = int(args[1]) if len(args) > 1 else 7
    commits = int(args[2]) if len(args) > 2 else 2000
    directory = args[3] if len(args) > 3 else "."
    out: "mp.Queue[tuple[float, float]]" = mp.Queue()
    procs = [mp.Process(target=writer, args=(directory, pages, commits, out)) for _ in range(writers)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    p50 = " ".join(f"{a:.3f}" for a, _ in results)
    p99 = " ".join(f"{b:.3f}" for _, b in results)
    print(f"{writers} writer(s), {pages} pages per commit: fdatasync p50 {p50} ms, p99 {p99} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
