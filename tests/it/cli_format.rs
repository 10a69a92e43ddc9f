//! What `fdfs info`, `fdfs meta get` and slave uploads print and name.

use std::path::Path;

use crate::util::{CLI_TIMEOUT, Cluster, FDFS, meta, parse_meta, random_bytes};

/// "YYYY-MM-DD HH:MM:SS" of a Unix time in UTC (civil from days, H. Hinnant's algorithm).
fn utc_text(t: u64) -> String {
    let (days, secs) = ((t / 86_400) as i64, t % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[test]
fn info_shows_create_time_as_date_time() {
    let cluster = Cluster::start();
    let data = random_bytes("info_shows_create_time_as_date_time", 5_000);
    let id = cluster.upload(&data, &[]);
    let run = cluster.fdfs(&["info", &id, "--json"]).success();
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).expect("info --json");
    let created = json["create_time"]
        .as_u64()
        .unwrap_or_else(|| panic!("create_time stays a number in --json: {json}"));

    // In UTC, so the test knows the expected text.
    let tracker = cluster.tracker_addr().to_string();
    let run = cluster.run(
        Path::new("/usr/bin/env"),
        &["TZ=UTC", FDFS, "info", &id, "--tracker", &tracker],
        None,
        CLI_TIMEOUT,
    );
    let run = run.success();
    let line = run
        .stdout_str()
        .lines()
        .find(|l| l.starts_with("create_time:"))
        .unwrap_or_else(|| panic!("no create_time line\n{}", run.describe()))
        .to_string();
    assert_eq!(line, format!("create_time: {}", utc_text(created)));
}

#[test]
fn meta_get_json() {
    let cluster = Cluster::start();
    let data = random_bytes("meta_get_json", 1_000);
    let id = cluster.upload(&data, &["--meta", "width=160", "--meta", "url=/a?b=c"]);
    let run = cluster.fdfs(&["meta", "get", &id, "--json"]).success();
    let json: serde_json::Value = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("meta get --json is not JSON: {e}\n{}", run.describe()));
    assert_eq!(
        json,
        serde_json::json!({"width": "160", "url": "/a?b=c"}),
        "{}",
        run.describe()
    );
    // The text form lists the same, sorted by key.
    let text = cluster.fdfs(&["meta", "get", &id]).success().stdout_str();
    assert_eq!(text, "url=/a?b=c\nwidth=160");
    assert_eq!(
        parse_meta(&text),
        meta(&[("width", "160"), ("url", "/a?b=c")])
    );

    cluster.fdfs(&["meta", "set", &id]).success();
    let run = cluster.fdfs(&["meta", "get", &id, "--json"]).success();
    assert_eq!(run.stdout_str(), "{}", "no metadata\n{}", run.describe());
}

/// `--prefix` goes between the master's name and the extension; its help says so.
#[test]
fn slave_prefix_goes_before_the_extension() {
    let cluster = Cluster::start();
    let master = cluster.upload(
        &random_bytes("slave_prefix/master", 3_000),
        &["--ext", "jpg"],
    );
    let thumb = cluster.write_file("thumb.png", &random_bytes("slave_prefix/thumb", 300));
    let run = cluster
        .fdfs(&[
            "upload",
            thumb.to_str().expect("UTF-8 path"),
            "--master",
            &master,
            "--prefix",
            "_150x150",
        ])
        .success();
    let stem = master.strip_suffix(".jpg").expect("master ends in .jpg");
    assert_eq!(run.stdout_str(), format!("{stem}_150x150.png"));

    let help = cluster.fdfs(&["upload", "--help"]).success().stdout_str();
    let prefix_help: String = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("--prefix"))
        .take_while(|l| !l.trim_start().starts_with("--tracker"))
        .collect();
    assert!(
        prefix_help.contains("before the extension") && !prefix_help.contains("suffix"),
        "--prefix help: {prefix_help}"
    );
}
