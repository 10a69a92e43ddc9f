#!/usr/bin/env python3
"""Drive appender files through the py3fdfsv2 client (PyPI, 2.4.1) against a running fdfs
tracker with storages, keeping a local model of the file's content.

Usage: appender_test.py TRACKER_HOST:PORT WORKDIR

Run by tests/it/third_party_py.rs inside the venv made by scripts/pyenv.sh. Prints one
`ok: <step>` line per passed step, then `appender_id: ID`, `regenerated_id: ID` and
`model_file: NAME` (the model, written in WORKDIR) for the Rust side to compare with every
storage, and `ALL OK` at the end; any failure raises, prints a traceback and exits non-zero.

py3fdfsv2 2.4.1 quirks this script has to live with (read from its source):
* file IDs are bytes; a str ID fails inside split_remote_fileid;
* Fdfs_client.modify_by_buffer / modify_by_file(name) always send offset 0 (`if not offset:
  file_offset = int(offset) else: file_offset = 0`), so modifies at other offsets call
  Storage_client.storage_modify_by_buffer directly, found the way the wrapper finds it
  (QUERY_UPDATE, cmd 103);
* append_by_buffer and modify_by_buffer refuse an empty buffer (client side);
* download_to_buffer asks the tracker with QUERY_FETCH_ONE, which may name a peer that has
  not caught up with the last change yet, so the download here goes to the storage
  QUERY_UPDATE names (the file's source) through Storage_client (query_file_info already
  uses QUERY_UPDATE);
* regenerate_appender_filename prints its request and reply to stdout (`send_buffer ...`,
  `regenerate response ...`), so the result lines here carry a prefix to be found among them;
* query_file_info reads the whole reply with one recv(1024) and unpacks exactly 40 bytes; the
  CRC32 arrives sign-extended to 64 bits.
"""

import os
import random
import sys
import traceback
import zlib

from fdfs_client import storage_client as sc
from fdfs_client.client import Fdfs_client, get_tracker_conf
from fdfs_client.exceptions import DataError

from common import check, same, step, storage_for_update

GROUP = b"group1"
MODEL_FILE = "py-appender-model.bin"


def modify_at(client, file_id, offset, data):
    tc, serv, store, remote = storage_for_update(client, file_id)
    ret = store.storage_modify_by_buffer(tc, serv, data, offset, len(data), remote)
    check(ret["Status"] == "Modify successed.", "modify at %d: %r" % (offset, ret))


def download_from_source(client, file_id):
    tc, serv, store, remote = storage_for_update(client, file_id)
    return store.storage_download_to_buffer(tc, serv, None, 0, 0, remote)["Content"]


def expect_errno(fn, errno, what):
    try:
        fn()
    except DataError as e:
        # py3fdfsv2 formats storage errors as "[-] Error: <errno>, <strerror>".
        check("Error: %d," % errno in str(e), "%s: expected errno %d, got %r" % (what, errno, e))
        return
    raise AssertionError("%s: expected errno %d, call succeeded" % (what, errno))


def check_model(client, file_id, model, what):
    """query_file_info (size, CRC32 computed over the content) against the model."""
    size, _created, crc32, _source = client.query_file_info(file_id)
    check(size == len(model), "%s: file info size %d, model %d" % (what, size, len(model)))
    check(crc32 & 0xFFFFFFFF == zlib.crc32(model),
          "%s: file info crc32 %08x, model %08x" % (what, crc32 & 0xFFFFFFFF, zlib.crc32(model)))


def main():
    tracker, workdir = sys.argv[1], sys.argv[2]
    rng = random.Random("py3fdfsv2-appender:" + tracker)

    def content(n):
        return rng.randbytes(n)

    conf = os.path.join(workdir, "client.conf")
    with open(conf, "w") as f:
        f.write("connect_timeout=5\nnetwork_timeout=30\nbase_path=%s\ntracker_server=%s\n"
                % (workdir, tracker))
    client = Fdfs_client(get_tracker_conf(conf))

    model = bytearray(content(20_000))
    ret = client.upload_appender_by_buffer(bytes(model), "log")
    file_id = ret["Remote file_id"]
    check(file_id.startswith(GROUP + b"/M") and file_id.endswith(b".log"), "file id %r" % file_id)
    check_model(client, file_id, model, "upload_appender_by_buffer")
    step("upload_appender_by_buffer " + file_id.decode())

    # Each kind once, then random ones; the model follows every change.
    def append(data):
        client.append_by_buffer(data, file_id)
        model.extend(data)

    def modify(offset, data):
        if offset == 0:
            client.modify_by_buffer(data, file_id, 0)
        else:
            modify_at(client, file_id, offset, data)
        end = offset + len(data)
        if len(model) < end:
            model.extend(bytes(end - len(model)))
        model[offset:end] = data

    def truncate(size):
        client.truncate_file(size, file_id)
        if size < len(model):
            del model[size:]
        else:
            model.extend(bytes(size - len(model)))

    append(content(200 * 1024))
    local = os.path.join(workdir, "py-append.bin")
    chunk = content(33_333)
    with open(local, "wb") as f:
        f.write(chunk)
    client.append_by_filename(local, file_id)
    model.extend(chunk)
    check_model(client, file_id, model, "append_by_buffer / append_by_filename")
    step("append")

    modify(0, content(4_000))
    modify(len(model) // 2, content(10_000))
    modify(len(model) - 100, content(5_000))
    check_model(client, file_id, model, "modify")
    step("modify (at 0, in the middle, across the end)")

    truncate(len(model) - 7_000)
    truncate(len(model) + 9_000)
    check_model(client, file_id, model, "truncate")
    step("truncate (shorter, longer)")

    for k in range(16):
        kind = rng.randrange(3)
        if kind == 0:
            append(content(rng.randrange(1, 60_000)))
        elif kind == 1:
            modify(rng.randrange(len(model) + 1), content(rng.randrange(1, 30_000)))
        else:
            truncate(rng.randrange(len(model) * 2 + 1))
        check_model(client, file_id, model, "random op %d (kind %d)" % (k, kind))
    step("16 random ops")

    same(bytes(model), download_from_source(client, file_id), "download from the source")
    step("download")

    # Appends and truncates need an appender file: EINVAL for a normal one.
    normal = client.upload_by_buffer(b"plain file", "txt")["Remote file_id"]
    expect_errno(lambda: client.append_by_buffer(b"x", normal), 22, "append to a normal file")
    expect_errno(lambda: client.truncate_file(0, normal), 22, "truncate a normal file")
    step("EINVAL for a normal file")

    with open(os.path.join(workdir, MODEL_FILE), "wb") as f:
        f.write(model)
    ret = client.regenerate_appender_filename(file_id)
    new_id = ret["Remote file_id"]
    check(new_id != file_id and new_id.startswith(GROUP + b"/M") and new_id.endswith(b".log"),
          "regenerated id %r of %r" % (new_id, file_id))
    check_model(client, new_id, model, "regenerated file")
    expect_errno(lambda: client.append_by_buffer(b"x", new_id), 22, "append to a regenerated file")
    step("regenerate_appender_filename " + new_id.decode())

    print("appender_id: " + file_id.decode())
    print("regenerated_id: " + new_id.decode())
    print("model_file: " + MODEL_FILE)
    print("ALL OK", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
