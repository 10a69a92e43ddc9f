//! Storage server status values as sent in JOIN, Brief and storage-stat records
//! (PROTOCOL.md §8; tracker_types.h FDFS_STORAGE_STATUS_*). Only std.

/// Known to the tracker, no sync source yet.
pub const INIT: u8 = 0;
/// Sync source assigned, not yet pushing.
pub const WAIT_SYNC: u8 = 1;
/// The source is pushing the existing files.
pub const SYNCING: u8 = 2;
/// Replaced by a record with a new IP.
pub const IP_CHANGED: u8 = 3;
/// Removed by an administrator.
pub const DELETED: u8 = 4;
/// Not connected, or caught up but not yet re-joined.
pub const OFFLINE: u8 = 5;
/// Joined, usage not yet reported.
pub const ONLINE: u8 = 6;
/// Serving: the only readable/writable state.
pub const ACTIVE: u8 = 7;
/// Recovering a lost disk from a peer.
pub const RECOVERY: u8 = 9;
/// Placeholder "no status", ignored in lists.
pub const NONE: u8 = 99;

/// Upper-case name as fdfs_monitor prints it ("ACTIVE"); "UNKNOWN" outside the table.
pub fn name(s: u8) -> &'static str {
    match s {
        INIT => "INIT",
        WAIT_SYNC => "WAIT_SYNC",
        SYNCING => "SYNCING",
        IP_CHANGED => "IP_CHANGED",
        DELETED => "DELETED",
        OFFLINE => "OFFLINE",
        ONLINE => "ONLINE",
        ACTIVE => "ACTIVE",
        RECOVERY => "RECOVERY",
        NONE => "NONE",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_names() {
        assert_eq!(
            (INIT, WAIT_SYNC, SYNCING, IP_CHANGED, DELETED),
            (0, 1, 2, 3, 4)
        );
        assert_eq!((OFFLINE, ONLINE, ACTIVE, RECOVERY, NONE), (5, 6, 7, 9, 99));
        assert_eq!(name(ACTIVE), "ACTIVE");
        assert_eq!(name(8), "UNKNOWN");
    }
}
