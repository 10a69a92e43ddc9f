//! Unit tests of the tracker's cluster state and selection rules.
use super::*;

fn cfg() -> TrackerConfig {
    TrackerConfig {
        reserved_storage_space: Reserved::Ratio(0.1),
        store_lookup: 0,
        ..TrackerConfig::default()
    }
}

fn join(state: &mut State, group: &str, ip: &str) {
    let j = JoinInfo {
        group: group.into(),
        id: ip.into(),
        ip: ip.into(),
        port: 23000,
        store_path_count: 2,
        subdir_count_per_path: 16,
        init_flag: true,
        rw_mode: RW_READ | RW_WRITE,
        ..JoinInfo::default()
    };
    let (status, _) = state.join(&j).unwrap();
    assert_eq!(status, st::INIT);
    assert_eq!(
        state.sync_dest_req(group, ip, 100).unwrap().is_some(),
        state.groups[group].storages.len() > 1
    );
    state.disk_usage(group, ip, vec![(1000, 900), (1000, 500)], 100, false);
}

#[test]
fn new_server_becomes_active_and_takes_uploads() {
    let mut s = State::default();
    assert_eq!(s.pick_store(None, &cfg()).unwrap_err(), Refusal::NotFound);
    join(&mut s, "group1", "10.0.0.1");
    let g = &s.groups["group1"];
    assert_eq!(g.storages[0].status, st::ACTIVE);
    assert_eq!(g.space(), (2000, 1400));
    let (name, order, p0) = s.pick_store(None, &cfg()).unwrap();
    assert_eq!((name.as_str(), order.len()), ("group1", 1));
    let (_, _, p1) = s.pick_store(None, &cfg()).unwrap();
    assert_ne!(p0, p1, "store paths are used in turn");
}

#[test]
fn round_robin_over_groups_and_no_space() {
    let mut s = State::default();
    join(&mut s, "group1", "10.0.0.1");
    join(&mut s, "group2", "10.0.0.2");
    let a = s.pick_store(None, &cfg()).unwrap().0;
    let b = s.pick_store(None, &cfg()).unwrap().0;
    assert_ne!(a, b);
    s.disk_usage(
        "group1",
        "10.0.0.1",
        vec![(1000, 10), (1000, 10)],
        101,
        false,
    );
    s.disk_usage(
        "group2",
        "10.0.0.2",
        vec![(1000, 10), (1000, 10)],
        101,
        false,
    );
    assert_eq!(s.pick_store(None, &cfg()).unwrap_err(), Refusal::NoSpace);
}

#[test]
fn new_server_status_follows_its_source() {
    let mut s = State::default();
    join(&mut s, "group1", "10.0.0.1");
    join(&mut s, "group1", "10.0.0.2");
    let g = &s.groups["group1"];
    assert_eq!(g.storages[1].status, st::WAIT_SYNC);
    assert_eq!(
        s.sync_src("group1", "10.0.0.2").unwrap(),
        Some(("10.0.0.1".into(), 100))
    );
    s.report_status("group1", "10.0.0.2", st::SYNCING).unwrap();
    s.report_status("group1", "10.0.0.2", st::WAIT_SYNC)
        .unwrap();
    assert_eq!(
        s.groups["group1"].storages[1].status,
        st::SYNCING,
        "no step back"
    );
    s.report_status("group1", "10.0.0.2", st::OFFLINE).unwrap();
    s.alive("group1", "10.0.0.2", 101);
    assert_eq!(s.groups["group1"].storages[1].status, st::ACTIVE);
    s.report_status("group1", "10.0.0.2", st::SYNCING).unwrap();
    assert_eq!(
        s.groups["group1"].storages[1].status,
        st::ACTIVE,
        "a serving server is left alone"
    );
}

#[test]
fn fetch_goes_to_source_or_synced_server() {
    let mut s = State::default();
    join(&mut s, "group1", "10.0.0.1");
    join(&mut s, "group1", "10.0.0.2");
    // 10.0.0.2 got a source, so it is WAIT_SYNC; make it ACTIVE for the test.
    s.groups.get_mut("group1").unwrap().storages[1].status = st::ACTIVE;
    let f = FileFacts {
        source: "10.0.0.1".into(),
        timestamp: 1000,
        normal: true,
    };
    let c = cfg();
    for _ in 0..4 {
        let got = s
            .pick_fetch("group1", &f, FetchKind::One, 1001, &c)
            .unwrap();
        assert_eq!(got[0].0, "10.0.0.1", "only the source has a fresh file");
    }
    s.groups.get_mut("group1").unwrap().storages[1]
        .stat
        .last_synced_timestamp = 1001;
    let all = s
        .pick_fetch("group1", &f, FetchKind::All, 1002, &c)
        .unwrap();
    assert_eq!(all.len(), 2);
    let up = s
        .pick_fetch("group1", &f, FetchKind::Update, 1002, &c)
        .unwrap();
    assert_eq!(up[0].0, "10.0.0.1");
}

#[test]
fn ip_change_keeps_files_reachable() {
    let mut s = State::default();
    join(&mut s, "group1", "10.0.0.1");
    s.ip_changed("group1", "10.0.0.1", "10.0.0.9").unwrap();
    assert_eq!(
        s.ip_changed("group1", "10.0.0.1", "10.0.0.9"),
        Err(Refusal::Already)
    );
    let g = &s.groups["group1"];
    assert_eq!(g.get("10.0.0.1").unwrap().status, st::IP_CHANGED);
    assert_eq!(g.get("10.0.0.9").unwrap().status, st::ACTIVE);
    // A file named after the old address is served by the new record.
    let f = FileFacts {
        source: "10.0.0.1".into(),
        timestamp: 1000,
        normal: false,
    };
    let got = s
        .pick_fetch("group1", &f, FetchKind::One, 1001, &cfg())
        .unwrap();
    assert_eq!(got[0].0, "10.0.0.9");
}

#[test]
fn offline_on_disconnect_unless_rejoined() {
    let mut s = State::default();
    join(&mut s, "group1", "10.0.0.1");
    let old = s.serial("group1", "10.0.0.1");
    let j = JoinInfo {
        group: "group1".into(),
        id: "10.0.0.1".into(),
        port: 23000,
        store_path_count: 2,
        subdir_count_per_path: 16,
        status: st::ACTIVE as i8,
        rw_mode: RW_READ | RW_WRITE,
        ..JoinInfo::default()
    };
    assert_eq!(s.join(&j).unwrap().0, st::ONLINE);
    s.disconnected("group1", "10.0.0.1", old);
    assert_eq!(s.groups["group1"].storages[0].status, st::ONLINE);
    assert_eq!(s.delete_storage("group1", "10.0.0.1"), Err(Refusal::Busy));
    s.disconnected("group1", "10.0.0.1", old + 1);
    assert_eq!(s.groups["group1"].storages[0].status, st::OFFLINE);
    assert_eq!(s.delete_storage("group1", "10.0.0.1"), Ok(()));
    assert_eq!(s.delete_group("group1"), Ok(()));
}

#[test]
fn heartbeat_timeout_marks_offline() {
    let mut s = State::default();
    join(&mut s, "group1", "10.0.0.1");
    assert!(s.expire(150, 100).is_empty());
    assert_eq!(s.expire(201, 100).len(), 1);
    assert_eq!(s.groups["group1"].storages[0].status, st::OFFLINE);
}
