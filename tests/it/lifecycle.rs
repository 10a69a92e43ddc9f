//! How a daemon starts, refuses to start and stops: one daemon per port and per base_path
//! (pid files, also FastDFS's), config mistakes reported at start (exit 2, on the
//! terminal), `run_by_user`, and the `start|stop|restart|status` actions.

use crate::util::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a daemon that must refuse to start may run before the test gives up on it.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Exit status for bad usage or configuration (fdfs(1)).
const EXIT_USAGE: i32 = 2;

/// Runs `fdfs ARGS` in `dir`, killed after `REFUSAL_TIMEOUT`.
fn fdfs_in(dir: &Path, args: &[&str]) -> Run {
    run_program(Path::new(FDFS), args, None, dir, REFUSAL_TIMEOUT)
}

/// Whether process `pid` exists and has not exited (an unreaped zombie has).
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X')
    })
}

/// The pid in a pid file.
fn pid_in(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Daemons started in the background are nobody's children: SIGKILLs the ones still
/// alive when the test ends (normally none).
#[derive(Default)]
struct Background(Vec<i32>);

impl Background {
    fn saw(&mut self, pid: i32) {
        self.0.push(pid);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if alive(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// A temp dir with `work/` and a tracker.conf (127.0.0.1, port 0, base_path `tracker/`,
/// then `extra`).
fn tracker_setup(extra: &[(&str, String)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("fdfs-it-life-")
        .tempdir()
        .expect("temp dir");
    for d in ["work", "tracker"] {
        fs::create_dir_all(dir.path().join(d)).expect("mkdir");
    }
    let conf = dir.path().join("tracker.conf");
    let mut entries = vec![
        ("bind_addr", TRACKER_IP.to_string()),
        ("port", "0".to_string()),
        ("base_path", path_str(&dir.path().join("tracker"))),
    ];
    entries.extend(extra.iter().cloned());
    write_conf(&conf, &entries);
    (dir, conf)
}

#[test]
fn second_daemon_on_the_same_base_path_is_refused() {
    let mut cluster = Cluster::start();
    let work = cluster.work_dir();
    for (i, role, pid_file) in [
        (0, "tracker", "fdfs_trackerd.pid"),
        (1, "storage", "fdfs_storaged.pid"),
    ] {
        let conf = if i == 0 {
            cluster.tracker_conf().to_path_buf()
        } else {
            cluster.storage_conf(0).to_path_buf()
        };
        // The same config: port 0 would give the second one a port of its own, so only the
        // pid file can keep it off the base_path.
        let run = fdfs_in(&work, &[role, "-c", &path_str(&conf)]);
        let pid = cluster.pid(i);
        assert_exit(
            &run,
            EXIT_USAGE,
            &[&format!("{role} already running: pid {pid}"), pid_file],
        );
        let base = if i == 0 {
            cluster.root().join("tracker")
        } else {
            cluster.base_path(0).to_path_buf()
        };
        assert_eq!(
            pid_in(&base.join("data").join(pid_file)),
            Some(pid as i32),
            "the running {role}'s pid file is left alone"
        );
    }
    cluster.assert_serves("second_daemon_on_the_same_base_path_is_refused");
}

#[test]
fn second_combined_server_on_the_same_dir_is_refused() {
    let mut cluster = Cluster::start_combined();
    let dir = path_str(&cluster.root().join("server"));
    let args = [
        "server",
        "--dir",
        &dir,
        "--tracker-port",
        "0",
        "--storage-port",
        "0",
    ];
    let run = fdfs_in(&cluster.work_dir(), &args);
    assert_exit(
        &run,
        EXIT_USAGE,
        &[
            &format!("tracker already running: pid {}", cluster.pid(0)),
            "tracker/data/fdfs_trackerd.pid",
        ],
    );
    cluster.assert_serves("second_combined_server_on_the_same_dir_is_refused");
}

#[test]
fn second_daemon_on_a_port_in_use_is_refused() {
    let mut cluster = Cluster::start();
    let work = cluster.work_dir();
    for (role, addr) in [
        ("tracker", cluster.tracker_addr()),
        ("storage", cluster.storage_addr(0)),
    ] {
        // Another base_path, the running daemon's address: SO_REUSEPORT would let both
        // listen and split the clients between them.
        let base = cluster.root().join(format!("second-{role}"));
        fs::create_dir_all(&base).expect("mkdir");
        let conf = cluster.root().join(format!("conf/second-{role}.conf"));
        write_conf(
            &conf,
            &[
                ("bind_addr", addr.ip().to_string()),
                ("port", addr.port().to_string()),
                ("base_path", path_str(&base)),
                ("subdir_count_per_path", "4".to_string()),
                ("tracker_server", cluster.tracker_addr().to_string()),
            ],
        );
        let run = fdfs_in(&work, &[role, "-c", &path_str(&conf)]);
        assert_exit(&run, EXIT_USAGE, &[&format!("{role}: {addr} is in use")]);
        assert!(
            !run.stdout_str().contains("listening on"),
            "{role} must not listen\n{}",
            run.describe()
        );
    }
    cluster.assert_serves("second_daemon_on_a_port_in_use_is_refused");
}

#[test]
fn pid_file_of_a_running_fastdfs_daemon_is_respected_a_stale_one_is_not() {
    let (dir, conf) = tracker_setup(&[]);
    let work = dir.path().join("work");
    let data = dir.path().join("tracker/data");
    fs::create_dir_all(&data).expect("mkdir data");
    let pid_file = data.join("fdfs_trackerd.pid");
    // A process whose name is fdfs_trackerd (a process takes the name it was started by),
    // as a C tracker on this base_path would be; C daemons write the pid file unlocked.
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("sleep(1)");
    let fake = work.join("fdfs_trackerd");
    std::os::unix::fs::symlink(sleep, &fake).expect("symlink");
    let mut c_tracker = std::process::Command::new(&fake)
        .arg("60")
        .spawn()
        .expect("spawn");
    let c_pid = c_tracker.id();
    fs::write(&pid_file, c_pid.to_string()).expect("write pid file");
    let run = fdfs_in(&work, &["tracker", "-c", &path_str(&conf)]);
    let stop = fdfs_in(&work, &["tracker", "-c", &path_str(&conf), "stop"]);
    let _ = c_tracker.kill();
    let _ = c_tracker.wait();
    assert_exit(
        &run,
        EXIT_USAGE,
        &[&format!("names pid {c_pid}, a running fdfs_trackerd")],
    );
    // `stop` (and so `restart`) ends it as FastDFS's own `fdfs_trackerd FILE stop` would.
    assert_exit(&stop, 0, &[&format!("tracker pid {c_pid} stopped")]);
    // Now the pid is stale: the tracker takes the file over.
    let mut tracker = Daemon::start(
        "tracker",
        &["tracker", "-c", &path_str(&conf)],
        &work,
        1,
        vec![conf.clone()],
        vec![dir.path().join("tracker/logs")],
    );
    assert_eq!(pid_in(&pid_file), Some(tracker.pid() as i32));
    assert!(tracker.stop_clean(), "tracker must stop cleanly");
    assert!(!pid_file.exists(), "pid file removed at a clean exit");
}

#[test]
fn config_warnings_are_printed_at_start() {
    let (dir, conf) = tracker_setup(&[("no_such_key", "1".to_string())]);
    let mut tracker = Daemon::start(
        "tracker",
        &["tracker", "-c", &path_str(&conf)],
        &dir.path().join("work"),
        1,
        vec![conf.clone()],
        vec![dir.path().join("tracker/logs")],
    );
    let want = "unknown key no_such_key ignored";
    let stderr = tracker.stderr_text();
    assert!(
        stderr.contains(&format!("fdfs: warning: {}:", path_str(&conf))) && stderr.contains(want),
        "stderr: {stderr}"
    );
    let log = fs::read_to_string(dir.path().join("tracker/logs/trackerd.log")).expect("log");
    assert!(log.contains(want), "and in the log: {log}");
    assert!(tracker.stop_clean());
}

#[test]
fn config_mistakes_stop_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    fs::create_dir_all(root.join("base")).expect("mkdir");
    let base = path_str(&root.join("base"));
    let missing = path_str(&root.join("nonexistent/x"));
    let cases: [(&str, String, Vec<String>); 4] = [
        (
            "storage",
            format!("base_path = {base}\nport = 0\n"),
            vec!["no tracker_server line".to_string()],
        ),
        (
            "storage",
            format!(
                "base_path = {base}\nport = 0\ntracker_server = 127.0.0.1:1\n\
                 store_path_count = 2\nstore_path1 = {missing}\n"
            ),
            vec![format!("store_path1 = {missing}: no such directory")],
        ),
        (
            "tracker",
            format!("base_path = {missing}\nport = 0\n"),
            vec![format!("base_path = {missing}: no such directory")],
        ),
        (
            "tracker",
            format!("base_path = {base}\nport = 0\nrun_by_user = no_such_user_fdfs\n"),
            vec!["run_by_user = no_such_user_fdfs: no such user".to_string()],
        ),
    ];
    for (i, (role, text, words)) in cases.iter().enumerate() {
        let conf = root.join(format!("case{i}.conf"));
        fs::write(&conf, text).expect("write conf");
        let conf = path_str(&conf);
        for action in [None, Some("start")] {
            let mut args = vec![*role, "-c", &conf];
            args.extend(action);
            let run = fdfs_in(root, &args);
            let mut want: Vec<&str> = words.iter().map(String::as_str).collect();
            if !words[0].starts_with("run_by") {
                want.push(&conf);
            }
            assert_exit(&run, EXIT_USAGE, &want);
        }
    }
    assert!(
        !root.join("nonexistent").exists(),
        "a missing directory is not made"
    );
}

/// A user other than root from /etc/passwd (nobody if there is one): (name, uid, gid).
fn unprivileged_user() -> Option<(String, u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let users: Vec<(String, u32, u32)> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((
                f.first()?.to_string(),
                f.get(2)?.parse().ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })
        .filter(|(_, uid, _)| *uid != 0)
        .collect();
    users
        .iter()
        .find(|u| u.0 == "nobody")
        .or(users.first())
        .cloned()
}

/// The `Uid:` or `Gid:` line of /proc/PID/status: real, effective, saved, filesystem.
fn ids(pid: u32, key: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .expect("id line")
        .split_whitespace()
        .map(|n| n.parse().expect("id"))
        .collect()
}

#[test]
fn run_by_user_switches_after_binding_and_keeps_working() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED run_by_user_switches_after_binding_and_keeps_working: needs root");
        return;
    }
    let Some((user, uid, gid)) = unprivileged_user() else {
        eprintln!("SKIPPED run_by_user_switches_after_binding_and_keeps_working: no user");
        return;
    };
    let mut cluster = Cluster::builder()
        .tracker_conf("run_by_user", &user)
        .storage_conf("run_by_user", &user)
        .start();
    for i in 0..2 {
        let pid = cluster.pid(i);
        assert_eq!(ids(pid, "Uid:"), vec![uid; 4], "daemon {i} runs as {user}");
        assert_eq!(
            ids(pid, "Gid:"),
            vec![gid; 4],
            "daemon {i} in {user}'s group"
        );
    }
    // Uploads land in the tree the storage made and handed over before switching.
    let data = random_bytes("run_by_user", 300_000);
    let id = cluster.upload(&data, &["--meta", "k=v"]);
    assert_same_bytes("download", &data, &cluster.download(&id));
    let rel = id.split_once("/M00/").expect("M00 file id").1;
    let stored = cluster.store_path(0, 0).join("data").join(rel);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&stored).expect("stored file").uid(), uid);
    // The log can still be reopened (logrotate moves it, SIGHUP).
    let log = cluster.base_path(0).join("logs/storaged.log");
    fs::rename(&log, log.with_extension("log.1")).expect("rotate");
    cluster.signal(1, Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&log).is_ok_and(|t| t.contains("log files reopened")) {
        assert!(Instant::now() < deadline, "no new log after SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stopping removes the pid files (in directories the user owns now).
    assert!(cluster.stop_daemon(1), "storage stops cleanly");
    assert!(cluster.stop_daemon(0), "tracker stops cleanly");
    assert!(!cluster.base_path(0).join("data/fdfs_storaged.pid").exists());
    assert!(
        !cluster
            .root()
            .join("tracker/data/fdfs_trackerd.pid")
            .exists()
    );
}

#[test]
fn tracker_start_status_stop_restart() {
    let (dir, conf) = tracker_setup(&[]);
    let conf = path_str(&conf);
    let work = dir.path().join("work");
    let pid_file = dir.path().join("tracker/data/fdfs_trackerd.pid");
    let mut background = Background::default();
    let act = |action: &str| fdfs_in(&work, &["tracker", "-c", &conf, action]);

    // start: back once it serves, having said where.
    let run = act("start");
    assert_exit(&run, 0, &[]);
    let addr = run
        .stdout_str()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address\n{}", run.describe()));
    let pid = pid_in(&pid_file).expect("pid file written");
    background.saw(pid);
    assert!(alive(pid), "daemon {pid} runs");
    assert_eq!(Raw::connect(addr).request(CMD_ACTIVE_TEST, &[]).status, 0);

    assert_exit(
        &act("start"),
        EXIT_USAGE,
        &[&format!("tracker already running: pid {pid}")],
    );
    let run = act("status");
    assert_exit(&run, 0, &[]);
    assert_eq!(run.stdout_str(), format!("tracker running, pid {pid}"));

    assert_exit(&act("stop"), 0, &[&format!("tracker pid {pid} stopped")]);
    assert!(!alive(pid), "daemon {pid} gone");
    assert!(!pid_file.exists(), "pid file removed");
    assert_exit(&act("stop"), EXIT_NOT_FOUND, &["tracker not running"]);
    assert_exit(&act("status"), EXIT_NOT_FOUND, &["tracker not running"]);

    // restart: starts one when none runs, replaces a running one.
    assert_exit(&act("restart"), 0, &[]);
    let first = pid_in(&pid_file).expect("pid after restart");
    background.saw(first);
    assert_exit(
        &act("restart"),
        0,
        &[&format!("tracker pid {first} stopped")],
    );
    let second = pid_in(&pid_file).expect("pid after second restart");
    background.saw(second);
    assert!(second != first && alive(second) && !alive(first));
    assert_exit(&act("stop"), 0, &[]);
    assert!(!alive(second));
}

#[test]
fn storage_runs_in_the_background_and_stops() {
    let mut cluster = Cluster::start();
    let conf = path_str(cluster.storage_conf(0));
    assert!(cluster.stop_storage(0), "foreground storage stops cleanly");
    let mut background = Background::default();
    let pid_file = cluster.base_path(0).join("data/fdfs_storaged.pid");
    let run = cluster
        .run(
            Path::new(FDFS),
            &["storage", "-c", &conf, "start"],
            None,
            CLI_TIMEOUT,
        )
        .success();
    assert!(
        run.stdout_str().starts_with("listening on "),
        "{}",
        run.describe()
    );
    let pid = pid_in(&pid_file).expect("pid file");
    background.saw(pid);
    const ACTIVE: u8 = 7;
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.storage_status(0) != Some(ACTIVE) {
        assert!(Instant::now() < deadline, "background storage never ACTIVE");
        std::thread::sleep(Duration::from_millis(50));
    }
    let data = random_bytes("storage_runs_in_the_background", 100_000);
    let id = cluster.upload(&data, &[]);
    assert_same_bytes("download", &data, &cluster.download(&id));
    cluster
        .run(
            Path::new(FDFS),
            &["storage", "-c", &conf, "stop"],
            None,
            CLI_TIMEOUT,
        )
        .success();
    assert!(!alive(pid) && !pid_file.exists());
}
