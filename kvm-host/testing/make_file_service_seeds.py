#!/usr/bin/env python3
# Writes the seed corpus of file_service_fuzz (kvm-host/file_service_fuzz.cc):
# series of steered calls that open, write, read, list, rename, link and
# remove files in the fuzz target's volumes, and that try the symlinks that
# point out of them. Run from this directory: ./make_file_service_seeds.py
import os
import struct

PATHS = ["", "a", "d", "d/x", "abs", "rel", "dir", "in", "dir/victim", "d/up", "d/up/victim", "new",
         "d/new", "dir/new", "../x", "a/..", "d//x", "/a", "d/sub", "d/sub/y", "victim"]
OPS = dict(Open=1, Close=2, Read=3, Write=4, Seek=5, Stat=6, FStat=7, ReadDir=8, Mkdir=9, Unlink=10,
           Rename=11, Symlink=12, ReadLink=13, Truncate=14, Chmod=15, SetTimes=16, Sync=17, Link=18)
PREFIX = 152 + 8  # the fields before `path`, and its first 8 bytes


def call(op, path="", file=0, flags=0, mode=0o644, arg=0, offset=0, segs=(), scratch=False, path2=None):
    # steer(): op = 1 + op % 18, file = 1 + file % 8, path = PATHS[path[0] % len].
    body = struct.pack("<8I", OPS[op] - 1, 0, (file - 1) % 8, 0, flags, mode, arg, len(segs))
    body += struct.pack("<qqqQQ", offset, 0, 0, 0, 0)
    body += bytes(72)                       # stat
    body += struct.pack("<II", 0, 0)        # path_len, path2_len (steer sets them)
    path_page = bytes([PATHS.index(path)]) + bytes(1023)
    mode_byte = 2 | (4 if scratch else 0) | (8 if offset == -1 else 0)
    if path2 is None and not segs:
        return bytes([mode_byte]) + (body + path_page)[:PREFIX]
    path2_page = bytes([PATHS.index(path2 or "")]) + bytes(1023)
    seg_bytes = b"".join(struct.pack("<QQ", a, n) for a, n in segs) + bytes(16 * (64 - len(segs)))
    page = body + path_page + path2_page + seg_bytes
    return bytes([mode_byte | 1 | (16 if op == "Symlink" else 0)]) + page


O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND, O_DIRECTORY = 0, 1, 2, 0o100, 0o1000, 0o2000, 0o200000
SEEDS = {
    "write_read": [call("Open", "new", flags=O_RDWR | O_CREAT), call("Write", file=1, offset=-1, segs=[(0, 100)]),
                   call("Seek", file=1, offset=0), call("Read", file=1, offset=-1, segs=[(4096, 50), (8192, 60)]),
                   call("FStat", file=1), call("Truncate", file=1, offset=10), call("Sync", file=1),
                   call("Close", file=1)],
    "dirs": [call("Mkdir", "d/sub"), call("Open", "d", flags=O_RDONLY | O_DIRECTORY),
             call("ReadDir", file=1, segs=[(0, 4096)]), call("Rename", "d/x", path2="d/sub/y"),
             call("Link", "a", path2="d/new"), call("Unlink", "d/sub/y"), call("Unlink", "d/sub", arg=1),
             call("Stat", "d/new")],
    "symlinks_out": [call("Open", "abs", flags=O_RDWR | O_TRUNC), call("Open", "rel", flags=O_WRONLY | O_CREAT),
                     call("Unlink", "dir/victim"), call("Rename", "a", path2="dir/new"),
                     call("Link", "dir/victim", path2="new"), call("Chmod", "abs", mode=0o777),
                     call("SetTimes", "d/up/victim"), call("ReadLink", "abs", segs=[(0, 256)]),
                     call("Stat", "abs", arg=1), call("Mkdir", "dir/new")],
    "scratch": [call("Open", "new", flags=O_WRONLY | O_CREAT | O_APPEND, scratch=True),
                call("Write", file=1, offset=-1, segs=[(0, 8000), (8192, 8000)], scratch=True),
                call("Write", file=1, offset=-1, segs=[(0, 8000)] * 3, scratch=True),
                call("Truncate", file=1, offset=90000, scratch=True), call("Unlink", "new", scratch=True)],
    "symlink_make": [call("Symlink", "new", path2="dir/victim"), call("Open", "new", flags=O_RDONLY),
                     call("ReadLink", "new", segs=[(0, 64)]), call("Chmod", "in", arg=1, mode=0o600),
                     call("SetTimes", "in", arg=1)],
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "file_service_fuzz_seeds")
os.makedirs(out, exist_ok=True)
for name, calls in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"".join(calls))
