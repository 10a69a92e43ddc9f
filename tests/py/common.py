"""Helpers shared by the py3fdfsv2 test scripts (run from tests/py, so this
module is importable as `common`)."""

import zlib

from fdfs_client import storage_client as sc
from fdfs_client.tracker_client import Tracker_client


def step(name):
    print("ok: " + name, flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def same(expected, actual, what):
    if expected != actual:
        first = next((i for i, (a, b) in enumerate(zip(expected, actual)) if a != b), None)
        raise AssertionError(
            "%s: expected %d bytes (crc32 %08x), got %d bytes (crc32 %08x), first difference at %r"
            % (what, len(expected), zlib.crc32(expected), len(actual), zlib.crc32(actual), first))


def storage_for_update(client, file_id):
    """(tracker client, storage server, storage client, remote name) for file_id, the way
    py3fdfsv2's own wrappers find them (QUERY_UPDATE, cmd 103)."""
    group, remote = file_id.split(b"/", 1)
    tc = Tracker_client(client.tracker_pool, client.trackers)
    serv = tc.tracker_query_storage_update(group, remote)
    store = sc.Storage_client(serv.ip_addr, serv.port, client.timeout)
    return tc, serv, store, remote
