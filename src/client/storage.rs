//! Storage operations: upload (streamed from a reader), download (streamed to a
//! writer), delete, metadata and file info.

use super::{Connection, Error, Timeouts};
use crate::proto::{self, Cmd};
use std::io::{Read, Write};

/// Chunk size for streaming file content.
const CHUNK: usize = 256 * 1024;

/// Uploads up to this size go out with their request header in one write.
const ONE_WRITE: u64 = 64 * 1024;

/// A connection to one storage server.
pub struct StorageClient {
    conn: Connection,
    /// To connect again after a server closed the connection on an error.
    timeouts: Timeouts,
    /// Reused for upload content. (Downloads get a fresh buffer: a reused
    /// one made 256 MiB downloads 2-3x slower here, for reasons not found.)
    buf: Vec<u8>,
}

/// What QUERY_FILE_INFO reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub create_time: u64,
    pub crc32: u32,
    pub source_ip: String,
}

impl StorageClient {
    /// Connect to the storage at "ip:port".
    pub fn connect(addr: &str, t: Timeouts) -> Result<StorageClient, Error> {
        Ok(StorageClient {
            conn: Connection::connect(addr, t, None)?,
            timeouts: t,
            buf: Vec::new(),
        })
    }

    fn bad(&self, e: proto::DecodeError) -> Error {
        Error::Protocol {
            addr: self.conn.peer.clone(),
            msg: e.to_string(),
        }
    }

    /// Upload `size` bytes from `src`; `progress` is told the bytes sent so far.
    /// Returns (group, remote file name).
    pub fn upload(
        &mut self,
        src: &mut dyn Read,
        size: u64,
        ext: &str,
        store_path_index: u8,
        appender: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(String, String), Error> {
        let cmd = if appender {
            Cmd::UploadAppenderFile
        } else {
            Cmd::UploadFile
        };
        let head = proto::UploadHead {
            store_path_index,
            file_size: size,
            ext: ext.to_string(),
        }
        .encode();
        let r = self.stream_request(cmd, &head, src, size, progress, 512)?;
        let r = proto::UploadReply::decode(&r).map_err(|e| self.bad(e))?;
        Ok((r.group, r.remote))
    }

    /// Download `length` bytes (0 = to the end) from `offset` into `dst`.
    /// Returns the number of bytes written.
    pub fn download(
        &mut self,
        group: &str,
        remote: &str,
        offset: u64,
        length: u64,
        dst: &mut dyn Write,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, Error> {
        let req = proto::Download {
            offset,
            length,
            group: group.into(),
            remote: remote.into(),
        }
        .encode();
        self.conn.send(Cmd::DownloadFile, &req)?;
        let total = match self.conn.recv_header(Cmd::DownloadFile) {
            // A C storage refuses any download of an empty file (its offset 0 is not
            // below the size 0) with EINVAL and closes the connection; the whole of
            // such a file is nothing.
            Err(e) if offset == 0 && e.status() == Some(proto::status::EINVAL) => {
                self.conn = Connection::connect(&self.conn.peer, self.timeouts, None)?;
                return match self.file_info(group, remote) {
                    Ok(st) if st.size == 0 => Ok(0),
                    _ => Err(e),
                };
            }
            r => r?,
        };
        let mut buf = vec![0u8; CHUNK.min(total.max(1) as usize)];
        self.receive(total, &mut buf, dst, progress)
    }

    fn receive(
        &mut self,
        total: u64,
        buf: &mut [u8],
        dst: &mut dyn Write,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, Error> {
        let mut got = 0u64;
        while got < total {
            let want = ((total - got) as usize).min(buf.len());
            let n = self.conn.read_some(&mut buf[..want])?;
            dst.write_all(&buf[..n]).map_err(|err| Error::Local {
                path: "output".into(),
                err,
            })?;
            got += n as u64;
            progress(got, total);
        }
        Ok(got)
    }

    /// Send the request header, `head` and `size` bytes of `src` (small bodies
    /// in the same write as the header).
    fn send_body(
        &mut self,
        cmd: Cmd,
        head: &[u8],
        src: &mut dyn Read,
        size: u64,
        progress: &mut dyn FnMut(u64),
        buf: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let pkg_len = head.len() as u64 + size;
        buf.resize(CHUNK.min(size.max(1) as usize), 0);
        if size <= ONE_WRITE {
            let body = &mut buf[..size as usize];
            read_input(src, body, 0, size)?;
            self.conn.send_parts(cmd, pkg_len, head, body)?;
            progress(size);
            return Ok(());
        }
        self.conn.send_with_len(cmd, head, pkg_len)?;
        let mut sent = 0u64;
        while sent < size {
            let want = ((size - sent) as usize).min(buf.len());
            read_input(src, &mut buf[..want], sent, size)?;
            self.conn.write_all(&buf[..want])?;
            sent += want as u64;
            progress(sent);
        }
        Ok(())
    }

    /// Send `size` bytes of `src` after a request head, then read the reply body.
    fn stream_request(
        &mut self,
        cmd: Cmd,
        head: &[u8],
        src: &mut dyn Read,
        size: u64,
        progress: &mut dyn FnMut(u64),
        max_reply: usize,
    ) -> Result<Vec<u8>, Error> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.send_body(cmd, head, src, size, progress, &mut buf);
        self.buf = buf;
        r?;
        let len = self.conn.recv_header(cmd)?;
        if len > max_reply as u64 {
            return Err(Error::Protocol {
                addr: self.conn.peer.clone(),
                msg: format!("{} reply of {len} bytes", cmd.name()),
            });
        }
        let mut body = vec![0u8; len as usize];
        self.conn.read_exact(&mut body)?;
        Ok(body)
    }

    /// APPEND_FILE: add `size` bytes of `src` at the end of an appender file.
    pub fn append(
        &mut self,
        remote: &str,
        src: &mut dyn Read,
        size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let head = proto::AppendHead {
            remote: remote.into(),
            file_size: size,
        }
        .encode();
        self.stream_request(Cmd::AppendFile, &head, src, size, progress, 0)
            .map(drop)
    }

    /// MODIFY_FILE: overwrite `size` bytes at `offset` of an appender file.
    pub fn modify(
        &mut self,
        remote: &str,
        offset: u64,
        src: &mut dyn Read,
        size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let head = proto::ModifyHead {
            remote: remote.into(),
            offset,
            size,
        }
        .encode();
        self.stream_request(Cmd::ModifyFile, &head, src, size, progress, 0)
            .map(drop)
    }

    /// TRUNCATE_FILE: set an appender file's size.
    pub fn truncate(&mut self, remote: &str, size: u64) -> Result<(), Error> {
        let body = proto::Truncate {
            remote: remote.into(),
            new_size: size,
        }
        .encode();
        self.conn.call(Cmd::TruncateFile, &body, 0).map(drop)
    }

    /// UPLOAD_SLAVE_FILE next to `master`; returns (group, slave name).
    pub fn upload_slave(
        &mut self,
        master: &str,
        prefix: &str,
        ext: &str,
        src: &mut dyn Read,
        size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(String, String), Error> {
        let head = proto::SlaveHead {
            file_size: size,
            prefix: prefix.into(),
            ext: ext.into(),
            master: master.into(),
        }
        .encode();
        let r = self.stream_request(Cmd::UploadSlaveFile, &head, src, size, progress, 512)?;
        let r = proto::UploadReply::decode(&r).map_err(|e| self.bad(e))?;
        Ok((r.group, r.remote))
    }

    /// REGENERATE_APPENDER_FILENAME: the appender file's new, normal name.
    pub fn regenerate(&mut self, remote: &str) -> Result<(String, String), Error> {
        let r = self
            .conn
            .call(Cmd::RegenerateAppenderFilename, remote.as_bytes(), 512)?;
        let r = proto::UploadReply::decode(&r).map_err(|e| self.bad(e))?;
        Ok((r.group, r.remote))
    }

    /// Delete a file (and its metadata).
    pub fn delete(&mut self, group: &str, remote: &str) -> Result<(), Error> {
        let body = proto::FileRef {
            group: group.into(),
            remote: remote.into(),
        }
        .encode();
        self.conn.call(Cmd::DeleteFile, &body, 0).map(drop)
    }

    /// Replace (`merge = false`) or merge metadata.
    pub fn set_metadata(
        &mut self,
        group: &str,
        remote: &str,
        meta: &[(String, String)],
        merge: bool,
    ) -> Result<(), Error> {
        let op = if merge {
            proto::MetaOp::Merge
        } else {
            proto::MetaOp::Overwrite
        };
        let body = proto::SetMetadata {
            op,
            group: group.into(),
            remote: remote.into(),
            meta: proto::encode_meta(meta),
        }
        .encode();
        self.conn.call(Cmd::SetMetadata, &body, 0).map(drop)
    }

    /// The file's metadata (empty when it has none).
    pub fn get_metadata(
        &mut self,
        group: &str,
        remote: &str,
    ) -> Result<Vec<(String, String)>, Error> {
        let body = proto::FileRef {
            group: group.into(),
            remote: remote.into(),
        }
        .encode();
        match self.conn.call(Cmd::GetMetadata, &body, 16 << 20) {
            Ok(r) => Ok(proto::decode_meta(&r)),
            // A storage answers ENOENT both when the file has no metadata and
            // when there is no file (upstream's does); QUERY_FILE_INFO tells
            // which. Asked on a new connection: a server may close the one
            // that carried an error.
            Err(e) if e.status() == Some(proto::status::ENOENT) => {
                self.conn = Connection::connect(&self.conn.peer, self.timeouts, None)?;
                match self.conn.call_flagged(
                    Cmd::QueryFileInfo,
                    proto::QUERY_FLAG_NO_CRC32,
                    &body,
                    128,
                ) {
                    Ok(_) => Ok(Vec::new()),
                    Err(fe) if fe.status() == Some(proto::status::ENOENT) => Err(e),
                    Err(fe) => Err(fe),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Size, creation time, CRC32 and source of a file.
    pub fn file_info(&mut self, group: &str, remote: &str) -> Result<FileStat, Error> {
        let body = proto::FileRef {
            group: group.into(),
            remote: remote.into(),
        }
        .encode();
        let r = self.conn.call(Cmd::QueryFileInfo, &body, 128)?;
        let i = proto::FileInfo::decode(&r).map_err(|e| self.bad(e))?;
        Ok(FileStat {
            size: i.size,
            create_time: i.create_time,
            crc32: i.crc32,
            source_ip: i.source_ip,
        })
    }

    /// fdfs's own FDFS_DEDUP_STAT for one file: how many files share its
    /// content. None from a storage without the command (C FastDFS answers
    /// an error and may close the connection: call this last).
    pub fn file_dedup(
        &mut self,
        group: &str,
        remote: &str,
    ) -> Result<Option<proto::dedup::FileDedup>, Error> {
        let body = proto::FileRef {
            group: group.into(),
            remote: remote.into(),
        }
        .encode();
        match self
            .conn
            .call(Cmd::FdfsDedupStat, &body, 8 + proto::MAX_REMOTE_NAME_LEN)
        {
            Ok(r) => proto::dedup::FileDedup::decode(&r)
                .map(Some)
                .map_err(|e| self.bad(e)),
            Err(Error::Status { status, .. }) if status == proto::status::EINVAL => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// fdfs's own FDFS_DEDUP_STAT for the storage: what dedup saves there.
    /// None from a storage without the command (as [`Self::file_dedup`]).
    pub fn dedup_stat(&mut self) -> Result<Option<proto::dedup::DedupStat>, Error> {
        match self
            .conn
            .call(Cmd::FdfsDedupStat, &[], proto::dedup::DedupStat::LEN)
        {
            Ok(r) => proto::dedup::DedupStat::decode(&r)
                .map(Some)
                .map_err(|e| self.bad(e)),
            Err(Error::Status { status, .. }) if status == proto::status::EINVAL => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// fdfs's own FDFS_REPAIR: start a pass (`flags`, see `proto::repair`)
    /// or only report (0). None from a storage without the command (C).
    pub fn repair(&mut self, flags: u8) -> Result<Option<proto::repair::RepairStat>, Error> {
        match self
            .conn
            .call(Cmd::FdfsRepair, &[flags], proto::repair::RepairStat::LEN)
        {
            Ok(r) => proto::repair::RepairStat::decode(&r)
                .map(Some)
                .map_err(|e| self.bad(e)),
            Err(Error::Status { status, .. }) if status == proto::status::EINVAL => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// End the session politely.
    pub fn quit(self) {
        self.conn.quit();
    }
}

/// Fill `b` from the input, of which `sent` of `size` bytes were read before;
/// an input that ends first is an error saying how far it got.
fn read_input(src: &mut dyn Read, b: &mut [u8], sent: u64, size: u64) -> Result<(), Error> {
    let mut n = 0;
    while n < b.len() {
        let err = match src.read(&mut b[n..]) {
            Ok(0) => std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("ended after {} of {size} bytes", sent + n as u64),
            ),
            Ok(k) => {
                n += k;
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => e,
        };
        return Err(Error::Local {
            path: "input".into(),
            err,
        });
    }
    Ok(())
}
