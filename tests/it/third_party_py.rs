//! The py3fdfsv2 Python client (PyPI 2.4.1) against our tracker and storage, through
//! `tests/py/client_test.py` and `tests/py/appender_test.py` in the venv made by
//! `scripts/pyenv.sh`, plus raw checks of the exact reply sizes that client (and the Node
//! `fdfs` client) insist on.

use std::path::PathBuf;
use std::time::Duration;

use crate::appender::assert_info;
use crate::util::{
    CMD_QUERY_FETCH_ONE, CMD_QUERY_FILE_INFO, CMD_QUERY_STORE_ONE, CMD_QUERY_UPDATE, Cluster,
    GROUP, Raw, fixed_str, padded, random_bytes,
};

/// The whole Python script may take this long (it makes a few dozen requests).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// `$FDFS_VENV`, else `<repo>/target/pyvenv` (the default of scripts/pyenv.sh).
fn venv_dir() -> PathBuf {
    match std::env::var_os("FDFS_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("pyvenv"),
    }
}

#[test]
fn py3fdfsv2_client() {
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    assert!(
        python.exists(),
        "the py3fdfsv2 venv is missing ({} not found): run scripts/pyenv.sh first \
         (it creates $FDFS_VENV, default <repo>/target/pyvenv)",
        python.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("py")
        .join("client_test.py");
    let cluster = Cluster::start();
    let tracker = cluster.tracker_addr().to_string();
    let work = cluster.work_dir();
    let args = [
        script.as_os_str(),
        std::ffi::OsStr::new(&tracker),
        work.as_os_str(),
    ];
    let run = cluster.run(&python, &args, None, SCRIPT_TIMEOUT);
    let run = run.success();
    // Shown with --nocapture: which steps ran.
    println!("{}", run.stdout_str());
    assert!(
        run.stdout_str().ends_with("ALL OK"),
        "client_test.py did not finish\n{}",
        run.describe()
    );
}

/// Deadline for the appender script's changes to reach every storage.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// py3fdfsv2's appender calls (upload, append, modify, truncate, file info, regenerate) on a
/// group of two storages; the script keeps a model of the content and writes it to a file,
/// which must then be what every storage holds under the regenerated name.
#[test]
fn py3fdfsv2_appender() {
    let python = venv_dir().join("bin").join("python");
    assert!(
        python.exists(),
        "the py3fdfsv2 venv is missing ({} not found): run scripts/pyenv.sh first",
        python.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("py")
        .join("appender_test.py");
    let cluster = Cluster::builder().storages(2).start();
    let tracker = cluster.tracker_addr().to_string();
    let work = cluster.work_dir();
    let args = [
        script.as_os_str(),
        std::ffi::OsStr::new(&tracker),
        work.as_os_str(),
    ];
    let run = cluster.run(&python, &args, None, SCRIPT_TIMEOUT).success();
    let out = run.stdout_str();
    println!("{out}");
    assert!(
        out.ends_with("ALL OK"),
        "appender_test.py did not finish\n{}",
        run.describe()
    );
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no `{key}` line\n{}", run.describe()))
            .trim()
            .to_string()
    };
    let appender = field("appender_id:");
    let regenerated = field("regenerated_id:");
    let model_path = work.join(field("model_file:"));
    let model =
        std::fs::read(&model_path).unwrap_or_else(|e| panic!("read {}: {e}", model_path.display()));
    cluster.wait_content_everywhere(&regenerated, &model, CONVERGE_TIMEOUT, "py3fdfsv2 model");
    cluster.wait_gone_everywhere(&appender, CONVERGE_TIMEOUT, "py3fdfsv2 appender name");
    for i in 0..cluster.storage_count() {
        assert_info(
            &cluster,
            i,
            &regenerated,
            &model,
            "py3fdfsv2 regenerated file",
        );
    }
}

#[test]
fn reply_sizes_match_strict_clients() {
    let cluster = Cluster::start();
    let id = cluster.upload(
        &random_bytes("reply_sizes_match_strict_clients", 1_000),
        &[],
    );
    let remote = id
        .strip_prefix(&format!("{GROUP}/"))
        .expect("file ID has the group");
    let mut file_body = padded(GROUP, 16);
    file_body.extend_from_slice(remote.as_bytes());

    // py3fdfsv2 and Node fdfs accept only these exact lengths (IPv4 fields of 16 bytes).
    let mut tracker = Raw::connect(cluster.tracker_addr());
    let store = tracker.request(CMD_QUERY_STORE_ONE, &[]);
    assert_eq!(
        (store.status, store.body.len()),
        (0, 40),
        "QUERY_STORE_WITHOUT_GROUP_ONE reply: {store:?}"
    );
    assert_eq!(
        fixed_str(&store.body[..16]),
        GROUP,
        "group in QUERY_STORE reply"
    );
    assert_eq!(
        fixed_str(&store.body[16..31]),
        cluster.storage_ip(0),
        "IP in QUERY_STORE reply"
    );
    for cmd in [CMD_QUERY_FETCH_ONE, CMD_QUERY_UPDATE] {
        let reply = tracker.request(cmd, &file_body);
        assert_eq!(
            (reply.status, reply.body.len()),
            (0, 39),
            "cmd {cmd} reply: {reply:?}"
        );
        let port = u64::from_be_bytes(reply.body[31..39].try_into().expect("8 bytes"));
        assert_eq!(
            port,
            u64::from(cluster.storage_addr(0).port()),
            "port in cmd {cmd} reply"
        );
    }

    // py3fdfsv2 reads the QUERY_FILE_INFO reply with a single recv(1024): header and body
    // must come in one write. A raw read cannot prove segmentation, but the size it can.
    let mut storage = Raw::connect(cluster.storage_addr(0));
    let info = storage.request(CMD_QUERY_FILE_INFO, &file_body);
    assert_eq!(
        (info.status, info.body.len()),
        (0, 40),
        "QUERY_FILE_INFO reply: {info:?}"
    );
    assert_eq!(
        fixed_str(&info.body[24..40]),
        cluster.storage_ip(0),
        "source IP in QUERY_FILE_INFO reply"
    );
}
