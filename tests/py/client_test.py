#!/usr/bin/env python3
"""Drive a running fdfs tracker + storage with the py3fdfsv2 client (PyPI, 2.4.1).

Usage: client_test.py TRACKER_HOST:PORT WORKDIR

Run by tests/it/third_party_py.rs inside the venv made by scripts/pyenv.sh. Prints one
`ok: <step>` line per passed step and `ALL OK` at the end; any failure raises, prints a
traceback and exits non-zero.

py3fdfsv2 2.4.1 quirks this script has to live with (read from its source):
* file IDs are bytes; a str ID fails inside split_remote_fileid;
* metadata cannot work on Python 3 as shipped: fdfs_pack_metadata returns str (struct.pack
  needs bytes), the default op flag 'O' is a str (struct 'c' needs bytes),
  fdfs_unpack_metadata splits bytes with a str separator, Fdfs_client.set_meta_data drops its
  op_flag argument and Fdfs_client.get_meta_data calls .encode() on bytes. The three
  module-level bugs are patched below so the library's own wire code can run; the two
  Fdfs_client wrappers are bypassed by calling its Storage_client methods directly;
* upload_by_buffer refuses an empty buffer (client side), so 0-byte files are not tried;
* download_to_file raises NameError for a non-zero offset, so ranges use download_to_buffer;
* query_file_info reads the whole reply with one recv(1024) and unpacks exactly 40 bytes.
"""

import os
import random
import re
import sys
import time
import traceback
import zlib

from fdfs_client import fdfs_protol
from fdfs_client import storage_client as sc
from fdfs_client.client import Fdfs_client, get_tracker_conf
from fdfs_client.exceptions import DataError

from common import check, same, step, storage_for_update

GROUP = b"group1"


def patch_metadata_bugs():
    """Make py3fdfsv2's metadata wire code usable on Python 3 (see the module docstring)."""
    pack = fdfs_protol.fdfs_pack_metadata

    def pack_bytes(meta):
        return pack(meta).encode()

    def unpack_bytes(stream):
        return fdfs_protol.fdfs_unpack_metadata(stream.decode())

    sc.fdfs_pack_metadata = pack_bytes
    sc.fdfs_unpack_metadata = unpack_bytes
    sc.Storage_client.storage_set_metadata.__defaults__ = (b"O",)


def set_meta(client, file_id, meta, flag):
    tc, serv, store, remote = storage_for_update(client, file_id)
    status = store.storage_set_metadata(tc, serv, remote, meta, flag)
    check(status == 0, "set metadata %r (%r): status %d" % (meta, flag, status))


def get_meta(client, file_id):
    tc, serv, store, remote = storage_for_update(client, file_id)
    return store.storage_get_metadata(tc, serv, remote.decode())


def expect_enoent(fn, what):
    try:
        fn()
    except DataError as e:
        # py3fdfsv2 formats storage errors as "...Error: <errno>..." with os.strerror.
        check(re.search(r"Error: ?2[ ,]", str(e)), "%s: expected ENOENT, got %r" % (what, e))
        return
    raise AssertionError("%s: expected an ENOENT error, call succeeded" % what)


def main():
    tracker, workdir = sys.argv[1], sys.argv[2]
    rng = random.Random("py3fdfsv2:" + tracker)

    def content(n):
        return bytes(rng.getrandbits(8) for _ in range(n))

    # One tracker_server line: py3fdfsv2 keeps the hosts of repeated lines but only the
    # port of the last one.
    conf = os.path.join(workdir, "client.conf")
    with open(conf, "w") as f:
        f.write("connect_timeout=5\nnetwork_timeout=30\nbase_path=%s\ntracker_server=%s\n"
                % (workdir, tracker))
    client = Fdfs_client(get_tracker_conf(conf))
    step("client.conf read")

    # Upload by buffer, download to buffer (whole and ranged).
    data = content(200_003)
    ret = client.upload_by_buffer(data, "bin")
    file_id = ret["Remote file_id"]
    storage_ip = ret["Storage IP"]
    check(file_id.startswith(GROUP + b"/M") and file_id.endswith(b".bin"), "file id %r" % file_id)
    check(ret["Uploaded size"] == len(data), "uploaded size %r" % ret)
    step("upload_by_buffer " + file_id.decode())

    got = client.download_to_buffer(file_id)
    same(data, got["Content"], "download_to_buffer")
    check(got["Download size"] == len(data), "download size %r" % got["Download size"])
    step("download_to_buffer whole")

    got = client.download_to_buffer(file_id, 1_000, 5_000)
    same(data[1_000:6_000], got["Content"], "download_to_buffer 1000+5000")
    got = client.download_to_buffer(file_id, 200_000, 0)
    same(data[200_000:], got["Content"], "download_to_buffer tail")
    step("download_to_buffer ranges")

    # Upload by file name (ext taken from the name), download to a file.
    local = content(150_001)
    src = os.path.join(workdir, "py-upload.txt")
    with open(src, "wb") as f:
        f.write(local)
    ret = client.upload_by_filename(src)
    file_id2 = ret["Remote file_id"]
    check(file_id2.endswith(b".txt"), "file id %r" % file_id2)
    dest = os.path.join(workdir, "py-download.txt")
    client.download_to_file(dest, file_id2)
    with open(dest, "rb") as f:
        same(local, f.read(), "upload_by_filename + download_to_file")
    step("upload_by_filename + download_to_file")

    tiny = content(1)
    tiny_id = client.upload_by_buffer(tiny)["Remote file_id"]
    same(tiny, client.download_to_buffer(tiny_id)["Content"], "1-byte file")
    step("1-byte file")

    # File info: exactly 40 bytes in one recv, size, CRC32 and source IP.
    size, created, crc32, source_ip = client.query_file_info(file_id)
    check(size == len(data), "file info size %d" % size)
    check(crc32 & 0xFFFFFFFF == zlib.crc32(data), "file info crc32 %x vs %x" % (crc32, zlib.crc32(data)))
    check(source_ip.rstrip(b"\0").decode() == storage_ip, "file info source ip %r" % source_ip)
    check(abs(created - time.time()) < 300, "file info create time %d" % created)
    step("query_file_info")

    # Metadata through py3fdfsv2's wire code (patched, see above): overwrite, merge, and
    # metadata given at upload time.
    patch_metadata_bugs()
    set_meta(client, file_id, {"width": "160", "author": "fdfs"}, b"O")
    meta = get_meta(client, file_id)
    check(meta == {"width": "160", "author": "fdfs"}, "metadata after overwrite: %r" % meta)
    set_meta(client, file_id, {"author": "py", "color": "red"}, b"M")
    meta = get_meta(client, file_id)
    check(meta == {"width": "160", "author": "py", "color": "red"}, "metadata after merge: %r" % meta)
    with_meta = client.upload_by_buffer(content(999), "jpg", {"k": "v"})["Remote file_id"]
    meta = get_meta(client, with_meta)
    check(meta == {"k": "v"}, "metadata given at upload: %r" % meta)
    step("metadata overwrite / merge / at upload")

    # Delete, then the file is gone (download and a second delete both say ENOENT).
    ret = client.delete_file(file_id)
    check(ret[0] == "Delete file successed.", "delete result %r" % (ret,))
    expect_enoent(lambda: client.download_to_buffer(file_id), "download after delete")
    expect_enoent(lambda: client.delete_file(file_id), "second delete")
    step("delete")

    # The other files survived.
    same(local, client.download_to_buffer(file_id2)["Content"], "other file after delete")
    for fid in (file_id2, tiny_id, with_meta):
        client.delete_file(fid)
    step("cleanup")
    print("ALL OK", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
