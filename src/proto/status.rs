//! Status byte values: Linux errno numbers (PROTOCOL.md §1.4).
//!
//! These are literal Linux values on purpose: FastDFS sends the Linux numbers on every OS,
//! so this table is the wire definition, not the host's errno. Only std.

/// Success.
pub const OK: u8 = 0;
/// Operation not permitted.
pub const EPERM: u8 = 1;
/// Not found.
pub const ENOENT: u8 = 2;
/// Interrupted.
pub const EINTR: u8 = 4;
/// I/O error.
pub const EIO: u8 = 5;
/// Try again.
pub const EAGAIN: u8 = 11;
/// Out of memory.
pub const ENOMEM: u8 = 12;
/// Access denied.
pub const EACCES: u8 = 13;
/// Bad address.
pub const EFAULT: u8 = 14;
/// Busy.
pub const EBUSY: u8 = 16;
/// Already exists.
pub const EEXIST: u8 = 17;
/// Is a directory.
pub const EISDIR: u8 = 21;
/// Invalid request.
pub const EINVAL: u8 = 22;
/// No space.
pub const ENOSPC: u8 = 28;
/// Name too long.
pub const ENAMETOOLONG: u8 = 36;
/// Server not online.
pub const ENONET: u8 = 64;
/// Not supported.
pub const EOPNOTSUPP: u8 = 95;
/// Not connected.
pub const ENOTCONN: u8 = 107;
/// Timed out.
pub const ETIMEDOUT: u8 = 110;
/// Already done.
pub const EALREADY: u8 = 114;
/// In progress.
pub const EINPROGRESS: u8 = 115;

const TABLE: &[(u8, &str, &str)] = &[
    (OK, "OK", "success"),
    (EPERM, "EPERM", "operation not permitted"),
    (ENOENT, "ENOENT", "no such file or directory"),
    (EINTR, "EINTR", "interrupted system call"),
    (EIO, "EIO", "input/output error"),
    (EAGAIN, "EAGAIN", "resource temporarily unavailable"),
    (ENOMEM, "ENOMEM", "cannot allocate memory"),
    (EACCES, "EACCES", "permission denied"),
    (EFAULT, "EFAULT", "bad address"),
    (EBUSY, "EBUSY", "device or resource busy"),
    (EEXIST, "EEXIST", "file exists"),
    (EISDIR, "EISDIR", "is a directory"),
    (EINVAL, "EINVAL", "invalid argument"),
    (ENOSPC, "ENOSPC", "no space left on device"),
    (ENAMETOOLONG, "ENAMETOOLONG", "file name too long"),
    (ENONET, "ENONET", "machine is not on the network"),
    (EOPNOTSUPP, "EOPNOTSUPP", "operation not supported"),
    (ENOTCONN, "ENOTCONN", "transport endpoint is not connected"),
    (ETIMEDOUT, "ETIMEDOUT", "connection timed out"),
    (EALREADY, "EALREADY", "operation already in progress"),
    (EINPROGRESS, "EINPROGRESS", "operation now in progress"),
];

/// Symbolic name ("ENOENT"), "OK" for 0, "unknown" for values outside the table.
pub fn name(s: u8) -> &'static str {
    TABLE.iter().find(|e| e.0 == s).map_or("unknown", |e| e.1)
}

/// Human text, e.g. "ENOENT: no such file or directory" or "errno 77: unknown".
pub fn describe(s: u8) -> String {
    match TABLE.iter().find(|e| e.0 == s) {
        Some((_, n, d)) => format!("{n}: {d}"),
        None => format!("errno {s}: unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        assert_eq!(name(ENOENT), "ENOENT");
        assert_eq!(name(0), "OK");
        assert_eq!(name(77), "unknown");
        assert_eq!(describe(2), "ENOENT: no such file or directory");
        assert_eq!(describe(77), "errno 77: unknown");
        assert_eq!(EINVAL, 22);
        assert_eq!(EINPROGRESS, 115);
    }
}
