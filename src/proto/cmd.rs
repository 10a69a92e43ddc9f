//! The command code enum: every FastDFS command (PROTOCOL.md §3), named after the upstream
//! constant (`STORAGE_PROTO_CMD_UPLOAD_FILE` = 11 -> `Cmd::UploadFile`). Only std.

use std::fmt;

macro_rules! commands {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $text:literal;)*) => {
        /// Every FastDFS command code (PROTOCOL.md §3), named after the upstream constant.
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Cmd {
            $($(#[$doc])* $name = $code,)*
        }

        impl Cmd {
            /// All known commands, in declaration order.
            #[cfg(test)]
            pub const ALL: &'static [Cmd] = &[$(Cmd::$name,)*];

            /// The command for a code byte; `None` for an unknown code (servers answer EINVAL).
            pub fn from_u8(v: u8) -> Option<Cmd> {
                match v {
                    $($code => Some(Cmd::$name),)*
                    _ => None,
                }
            }

            /// Upstream constant name without its `*_PROTO_CMD_` prefix, e.g. "UPLOAD_FILE".
            pub fn name(self) -> &'static str {
                match self {
                    $(Cmd::$name => $text,)*
                }
            }
        }
    };
}

commands! {
    /// 9, storage -> storage: first message of a sync connection (§11.1).
    ReportServerId = 9, "REPORT_SERVER_ID";
    /// 11: upload a file (§5.1).
    UploadFile = 11, "UPLOAD_FILE";
    /// 12: delete a file (§5.6).
    DeleteFile = 12, "DELETE_FILE";
    /// 13: set metadata (§5.7).
    SetMetadata = 13, "SET_METADATA";
    /// 14: download a file (§5.9).
    DownloadFile = 14, "DOWNLOAD_FILE";
    /// 15: get metadata (§5.8).
    GetMetadata = 15, "GET_METADATA";
    /// 16: sync a new file (§11.2).
    SyncCreateFile = 16, "SYNC_CREATE_FILE";
    /// 17: sync a deletion (§11.3).
    SyncDeleteFile = 17, "SYNC_DELETE_FILE";
    /// 18: sync a whole-file replacement (§11.2).
    SyncUpdateFile = 18, "SYNC_UPDATE_FILE";
    /// 19: sync a symlink (§11.6).
    SyncCreateLink = 19, "SYNC_CREATE_LINK";
    /// 20: dedup helper (§5.12).
    CreateLink = 20, "CREATE_LINK";
    /// 21: upload a slave file (§5.3).
    UploadSlaveFile = 21, "UPLOAD_SLAVE_FILE";
    /// 22: query file info (§5.10).
    QueryFileInfo = 22, "QUERY_FILE_INFO";
    /// 23: upload an appender file (§5.2).
    UploadAppenderFile = 23, "UPLOAD_APPENDER_FILE";
    /// 24: append to an appender file (§5.4).
    AppendFile = 24, "APPEND_FILE";
    /// 25: sync an append (§11.4).
    SyncAppendFile = 25, "SYNC_APPEND_FILE";
    /// 26: disk recovery binlog fetch (§11.7).
    FetchOnePathBinlog = 26, "FETCH_ONE_PATH_BINLOG";
    /// 27: trunk space allocation (§12).
    TrunkAllocSpace = 27, "TRUNK_ALLOC_SPACE";
    /// 28: trunk allocation confirm (§12).
    TrunkAllocConfirm = 28, "TRUNK_ALLOC_CONFIRM";
    /// 29: trunk free space (§12).
    TrunkFreeSpace = 29, "TRUNK_FREE_SPACE";
    /// 30: trunk binlog sync (§12).
    TrunkSyncBinlog = 30, "TRUNK_SYNC_BINLOG";
    /// 31: trunk binlog size (§12).
    TrunkGetBinlogSize = 31, "TRUNK_GET_BINLOG_SIZE";
    /// 32: trunk binlog marks deletion (§12).
    TrunkDeleteBinlogMarks = 32, "TRUNK_DELETE_BINLOG_MARKS";
    /// 33: trunk binlog truncation (§12).
    TrunkTruncateBinlogFile = 33, "TRUNK_TRUNCATE_BINLOG_FILE";
    /// 34: modify an appender file (§5.4).
    ModifyFile = 34, "MODIFY_FILE";
    /// 35: sync a modify (§11.4).
    SyncModifyFile = 35, "SYNC_MODIFY_FILE";
    /// 36: truncate an appender file (§5.5).
    TruncateFile = 36, "TRUNCATE_FILE";
    /// 37: sync a truncate (§11.5).
    SyncTruncateFile = 37, "SYNC_TRUNCATE_FILE";
    /// 38: turn an appender into a normal file name (§5.11).
    RegenerateAppenderFilename = 38, "REGENERATE_APPENDER_FILENAME";
    /// 40: sync a rename (§11.6).
    SyncRenameFile = 40, "SYNC_RENAME_FILE";
    /// 58: tracker joins the leader (§10.2).
    TrackerJoinLeader = 58, "TRACKER_JOIN_LEADER";
    /// 59: storage changes its own status (§9.7).
    StorageChangeStatus = 59, "STORAGE_CHANGE_STATUS";
    /// 60: storage asks for its IP (§4.9).
    StorageGetMyIp = 60, "STORAGE_GET_MY_IP";
    /// 61: system file copy start (§10.3).
    TrackerGetSysFilesStart = 61, "TRACKER_GET_SYS_FILES_START";
    /// 62: system file copy end (§10.3).
    TrackerGetSysFilesEnd = 62, "TRACKER_GET_SYS_FILES_END";
    /// 63: one system file (§10.3).
    TrackerGetOneSysFile = 63, "TRACKER_GET_ONE_SYS_FILE";
    /// 64: tracker status for elections (§10.1).
    TrackerGetStatus = 64, "TRACKER_GET_STATUS";
    /// 65: follower pings the leader (§10.2).
    TrackerPingLeader = 65, "TRACKER_PING_LEADER";
    /// 66: election notify (§10.1).
    TrackerNotifyNextLeader = 66, "TRACKER_NOTIFY_NEXT_LEADER";
    /// 67: election commit (§10.1).
    TrackerCommitNextLeader = 67, "TRACKER_COMMIT_NEXT_LEADER";
    /// 68: two leaders seen, reselect (§9.9).
    TrackerNotifyReselectLeader = 68, "TRACKER_NOTIFY_RESELECT_LEADER";
    /// 69: storage id list (§4.8).
    FetchStorageIds = 69, "STORAGE_FETCH_STORAGE_IDS";
    /// 70: storage id for (group, ip, port) (§9.12).
    StorageGetServerId = 70, "STORAGE_GET_SERVER_ID";
    /// 71: a server's Brief (§9.12).
    StorageGetStatus = 71, "STORAGE_GET_STATUS";
    /// 72: trunk file id fetch (§9.11).
    StorageFetchTrunkFid = 72, "STORAGE_FETCH_TRUNK_FID";
    /// 73: trunk file id report (§9.11).
    StorageReportTrunkFid = 73, "STORAGE_REPORT_TRUNK_FID";
    /// 74: trunk free space report (§9.11).
    StorageReportTrunkFree = 74, "STORAGE_REPORT_TRUNK_FREE";
    /// 75: cluster parameters (§9.8).
    StorageParameterReq = 75, "STORAGE_PARAMETER_REQ";
    /// 76: source reports a destination's status (§9.7).
    StorageReportStatus = 76, "STORAGE_REPORT_STATUS";
    /// 77: changelog chunk (§9.10).
    StorageChangelogReq = 77, "STORAGE_CHANGELOG_REQ";
    /// 78: storage IP changed (§9.10).
    StorageReportIpChanged = 78, "STORAGE_REPORT_IP_CHANGED";
    /// 79: sync source query (§9.6).
    StorageSyncDestQuery = 79, "STORAGE_SYNC_DEST_QUERY";
    /// 81: storage join (§9.2).
    StorageJoin = 81, "STORAGE_JOIN";
    /// 82: close the connection, no reply (§1.5).
    Quit = 82, "QUIT";
    /// 83: heartbeat (§9.3).
    StorageBeat = 83, "STORAGE_BEAT";
    /// 84: disk usage report (§9.3).
    StorageReportDiskUsage = 84, "STORAGE_REPORT_DISK_USAGE";
    /// 85: server list differences (§9.4).
    StorageReplicaChg = 85, "STORAGE_REPLICA_CHG";
    /// 86: "am I its source?" (§9.6).
    StorageSyncSrcReq = 86, "STORAGE_SYNC_SRC_REQ";
    /// 87: new storage asks for a source (§9.6).
    StorageSyncDestReq = 87, "STORAGE_SYNC_DEST_REQ";
    /// 88: storage tells its source (§9.6).
    StorageSyncNotify = 88, "STORAGE_SYNC_NOTIFY";
    /// 89: sync timestamps report (§9.3).
    StorageSyncReport = 89, "STORAGE_SYNC_REPORT";
    /// 90: one group's stat (§4.3).
    ListOneGroup = 90, "SERVER_LIST_ONE_GROUP";
    /// 91: all groups' stats (§4.3).
    ListAllGroups = 91, "SERVER_LIST_ALL_GROUPS";
    /// 92: storage stats of a group (§4.4).
    ListStorage = 92, "SERVER_LIST_STORAGE";
    /// 93: delete a storage (§4.5).
    DeleteStorage = 93, "SERVER_DELETE_STORAGE";
    /// 94: set the trunk server (§4.6).
    SetTrunkServer = 94, "SERVER_SET_TRUNK_SERVER";
    /// 95: leader address (§4.7).
    GetLeader = 95, "SERVER_GET_LEADER";
    /// 96: tracker cluster stat (§4.7).
    TrackerClusterStat = 96, "SERVER_TRACKER_CLUSTER_STAT";
    /// 97: storage cluster stat (§4.7).
    StorageClusterStat = 97, "SERVER_STORAGE_CLUSTER_STAT";
    /// 98: volume stat (upstream spells it VOLUMN) (§4.7).
    StorageVolumnStat = 98, "SERVER_STORAGE_VOLUMN_STAT";
    /// 100: every response.
    Resp = 100, "RESP";
    /// 101: where to upload, any group (§4.1).
    QueryStoreWithoutGroupOne = 101, "SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE";
    /// 102: where to download (§4.2).
    QueryFetchOne = 102, "SERVICE_QUERY_FETCH_ONE";
    /// 103: where to modify (§4.2).
    QueryUpdate = 103, "SERVICE_QUERY_UPDATE";
    /// 104: where to upload, named group (§4.1).
    QueryStoreWithGroupOne = 104, "SERVICE_QUERY_STORE_WITH_GROUP_ONE";
    /// 105: every server holding a file (§4.2).
    QueryFetchAll = 105, "SERVICE_QUERY_FETCH_ALL";
    /// 106: all writable servers, any group (§4.1).
    QueryStoreWithoutGroupAll = 106, "SERVICE_QUERY_STORE_WITHOUT_GROUP_ALL";
    /// 107: all writable servers, named group (§4.1).
    QueryStoreWithGroupAll = 107, "SERVICE_QUERY_STORE_WITH_GROUP_ALL";
    /// 108: delete a group (§4.5).
    DeleteGroup = 108, "SERVER_DELETE_GROUP";
    /// 109: group of a server (§4.9).
    GetGroupName = 109, "STORAGE_GET_GROUP_NAME";
    /// 111: keep-alive probe, empty reply (§1.5).
    ActiveTest = 111, "ACTIVE_TEST";
    /// 201: fdfs's own: dedup figures of a storage, or whether a file shares
    /// its content (`proto::dedup`). Not in upstream.
    FdfsDedupStat = 201, "FDFS_DEDUP_STAT";
    /// 202: fdfs's own, storage to storage: digests of a store path's
    /// directories, or one directory's files, for anti-entropy (`proto::repair`).
    FdfsTreeDigest = 202, "FDFS_TREE_DIGEST";
    /// 203: fdfs's own: start a scrub/repair pass, or report its figures
    /// (`proto::repair`).
    FdfsRepair = 203, "FDFS_REPAIR";
}

impl Cmd {
    /// The name of command code `code`, `CMD_<code>` for one we do not know
    /// (labels in `/metrics`).
    pub fn label(code: u8) -> String {
        Cmd::from_u8(code).map_or_else(|| format!("CMD_{code}"), |c| c.name().to_string())
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), *self as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_codes() {
        let expect: &[(u8, Cmd)] = &[
            (9, Cmd::ReportServerId),
            (11, Cmd::UploadFile),
            (12, Cmd::DeleteFile),
            (13, Cmd::SetMetadata),
            (14, Cmd::DownloadFile),
            (15, Cmd::GetMetadata),
            (16, Cmd::SyncCreateFile),
            (17, Cmd::SyncDeleteFile),
            (18, Cmd::SyncUpdateFile),
            (19, Cmd::SyncCreateLink),
            (20, Cmd::CreateLink),
            (21, Cmd::UploadSlaveFile),
            (22, Cmd::QueryFileInfo),
            (23, Cmd::UploadAppenderFile),
            (24, Cmd::AppendFile),
            (25, Cmd::SyncAppendFile),
            (26, Cmd::FetchOnePathBinlog),
            (27, Cmd::TrunkAllocSpace),
            (28, Cmd::TrunkAllocConfirm),
            (29, Cmd::TrunkFreeSpace),
            (30, Cmd::TrunkSyncBinlog),
            (31, Cmd::TrunkGetBinlogSize),
            (32, Cmd::TrunkDeleteBinlogMarks),
            (33, Cmd::TrunkTruncateBinlogFile),
            (34, Cmd::ModifyFile),
            (35, Cmd::SyncModifyFile),
            (36, Cmd::TruncateFile),
            (37, Cmd::SyncTruncateFile),
            (38, Cmd::RegenerateAppenderFilename),
            (40, Cmd::SyncRenameFile),
            (58, Cmd::TrackerJoinLeader),
            (59, Cmd::StorageChangeStatus),
            (60, Cmd::StorageGetMyIp),
            (61, Cmd::TrackerGetSysFilesStart),
            (62, Cmd::TrackerGetSysFilesEnd),
            (63, Cmd::TrackerGetOneSysFile),
            (64, Cmd::TrackerGetStatus),
            (65, Cmd::TrackerPingLeader),
            (66, Cmd::TrackerNotifyNextLeader),
            (67, Cmd::TrackerCommitNextLeader),
            (68, Cmd::TrackerNotifyReselectLeader),
            (69, Cmd::FetchStorageIds),
            (70, Cmd::StorageGetServerId),
            (71, Cmd::StorageGetStatus),
            (72, Cmd::StorageFetchTrunkFid),
            (73, Cmd::StorageReportTrunkFid),
            (74, Cmd::StorageReportTrunkFree),
            (75, Cmd::StorageParameterReq),
            (76, Cmd::StorageReportStatus),
            (77, Cmd::StorageChangelogReq),
            (78, Cmd::StorageReportIpChanged),
            (79, Cmd::StorageSyncDestQuery),
            (81, Cmd::StorageJoin),
            (82, Cmd::Quit),
            (83, Cmd::StorageBeat),
            (84, Cmd::StorageReportDiskUsage),
            (85, Cmd::StorageReplicaChg),
            (86, Cmd::StorageSyncSrcReq),
            (87, Cmd::StorageSyncDestReq),
            (88, Cmd::StorageSyncNotify),
            (89, Cmd::StorageSyncReport),
            (90, Cmd::ListOneGroup),
            (91, Cmd::ListAllGroups),
            (92, Cmd::ListStorage),
            (93, Cmd::DeleteStorage),
            (94, Cmd::SetTrunkServer),
            (95, Cmd::GetLeader),
            (96, Cmd::TrackerClusterStat),
            (97, Cmd::StorageClusterStat),
            (98, Cmd::StorageVolumnStat),
            (100, Cmd::Resp),
            (101, Cmd::QueryStoreWithoutGroupOne),
            (102, Cmd::QueryFetchOne),
            (103, Cmd::QueryUpdate),
            (104, Cmd::QueryStoreWithGroupOne),
            (105, Cmd::QueryFetchAll),
            (106, Cmd::QueryStoreWithoutGroupAll),
            (107, Cmd::QueryStoreWithGroupAll),
            (108, Cmd::DeleteGroup),
            (109, Cmd::GetGroupName),
            (111, Cmd::ActiveTest),
            (201, Cmd::FdfsDedupStat),
            (202, Cmd::FdfsTreeDigest),
            (203, Cmd::FdfsRepair),
        ];
        assert_eq!(expect.len(), Cmd::ALL.len());
        for &(code, cmd) in expect {
            assert_eq!(Cmd::from_u8(code), Some(cmd), "code {code}");
            assert_eq!(cmd as u8, code);
        }
        let known: Vec<u8> = expect.iter().map(|e| e.0).collect();
        for v in 0..=255u8 {
            if !known.contains(&v) {
                assert_eq!(Cmd::from_u8(v), None, "code {v}");
            }
        }
        assert_eq!(Cmd::from_u8(39), None);
        assert_eq!(Cmd::UploadFile.name(), "UPLOAD_FILE");
        assert_eq!(Cmd::StorageJoin.name(), "STORAGE_JOIN");
        assert_eq!(Cmd::UploadFile.to_string(), "UPLOAD_FILE(11)");
    }
}
