//! The man pages cover what the binary offers: every option that `fdfs COMMAND --help` lists is
//! described in the page of that command (fdfs-tracker(8), fdfs-storage(8), fdfs-server(8),
//! fdfs(1) for the client commands), every command is named in fdfs(1), and every key the config
//! readers know (`src/config/`) is described in fdfs.conf(5).

use std::path::{Path, PathBuf};

use crate::util::{CLI_TIMEOUT, FDFS, run_program};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The roff source of `man/NAME` as text a reader sees: `\-` as `-`, font changes dropped.
fn man_text(name: &str) -> String {
    let path = root().join("man").join(name);
    let src = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut out = src.replace("\\-", "-").replace("\\(S2", "");
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        out = out.replace(font, "");
    }
    out
}

/// Whether `word` stands in `text` on its own: not inside a longer option or key
/// (`--storage` is not found in `--storage-port`, `store_path` is in `store_pathN`'s stead only
/// as itself).
fn has_word(text: &str, word: &str) -> bool {
    let part = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(|c| part(c) && c != '-' || word.starts_with('-') && c == '-')
            && !after.is_some_and(part)
    })
}

/// `fdfs ARGS --help`, as text.
fn help(args: &[&str]) -> String {
    let mut argv = args.to_vec();
    argv.push("--help");
    let dir = tempfile::tempdir().expect("temp dir");
    let run = run_program(Path::new(FDFS), &argv, None, dir.path(), CLI_TIMEOUT);
    assert!(
        run.status.is_some_and(|s| s.success()),
        "{}",
        run.describe()
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}

/// The names under a help text's `Commands:` heading, without `help`.
fn subcommands(help: &str) -> Vec<String> {
    section(help, "Commands:")
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The options under `Options:`: `-c` and `--config` from `  -c, --config <FILE>`.
fn options(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in section(help, "Options:") {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue;
        }
        for word in line
            .split([',', ' '])
            .take_while(|w| w.is_empty() || w.starts_with('-'))
        {
            if !word.is_empty() {
                out.push(word.to_string());
            }
        }
    }
    out
}

/// The indented lines after `heading` up to the next heading.
fn section<'a>(help: &'a str, heading: &str) -> impl Iterator<Item = &'a str> {
    help.lines()
        .skip_while(move |l| *l != heading)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter(|l| l.starts_with("  ") && !l.starts_with("        "))
}

/// The page that describes a top-level command's options.
fn page_of(command: &str) -> &'static str {
    match command {
        "tracker" => "fdfs-tracker.8",
        "storage" => "fdfs-storage.8",
        "server" => "fdfs-server.8",
        _ => "fdfs.1",
    }
}

#[test]
fn every_option_of_help_is_in_its_man_page() {
    let top = help(&[]);
    let commands = subcommands(&top);
    assert!(commands.len() >= 14, "commands in --help: {commands:?}");
    let fdfs1 = man_text("fdfs.1");
    let mut missing = Vec::new();
    for opt in options(&top) {
        if !has_word(&fdfs1, &opt) {
            missing.push(format!("fdfs {opt} (fdfs.1)"));
        }
    }
    for command in &commands {
        if !has_word(&fdfs1, command) {
            missing.push(format!("command {command} (fdfs.1)"));
        }
        let page = page_of(command);
        let text = man_text(page);
        let text1 = help(&[command]);
        let mut pages = vec![(vec![command.clone()], text1.clone())];
        for sub in subcommands(&text1) {
            let h = help(&[command, &sub]);
            pages.push((vec![command.clone(), sub], h));
        }
        for (args, h) in &pages {
            for opt in options(h) {
                if !has_word(&text, &opt) {
                    missing.push(format!("fdfs {} {opt} ({page})", args.join(" ")));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "options of --help not described in man/: {missing:#?}"
    );
}

/// String literals of `src/config/FILE` outside its tests that look like keys (`a_b`).
fn config_keys(file: &str) -> Vec<String> {
    let path: PathBuf = root().join("src/config").join(file);
    let src = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let code = src.split("#[cfg(test)]").next().unwrap_or_default();
    let mut keys = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or_default();
        for (i, lit) in line.split('"').enumerate() {
            let key_like = !lit.is_empty()
                && lit.contains('_')
                && lit.starts_with(|c: char| c.is_ascii_lowercase())
                && lit
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if i % 2 == 1 && key_like && !keys.iter().any(|k| k == lit) {
                keys.push(lit.to_string());
            }
        }
    }
    keys
}

#[test]
fn every_config_key_is_in_fdfs_conf_5() {
    let page = man_text("fdfs.conf.5");
    let mut all = Vec::new();
    for file in ["tracker.rs", "storage.rs", "client.rs", "read.rs"] {
        let keys = config_keys(file);
        assert!(!keys.is_empty(), "no keys found in src/config/{file}");
        all.extend(keys.into_iter().map(|k| (file, k)));
    }
    assert!(all.len() > 100, "keys found: {all:?}");
    let missing: Vec<_> = all
        .iter()
        .filter(|(_, k)| !has_word(&page, k))
        .map(|(f, k)| format!("{k} (src/config/{f})"))
        .collect();
    assert!(
        missing.is_empty(),
        "config keys not described in man/fdfs.conf.5: {missing:#?}"
    );
    for word in ["port", "disabled", "[access-log]", "http."] {
        assert!(page.contains(word), "{word} not in man/fdfs.conf.5");
    }
}

#[test]
fn word_boundaries() {
    assert!(has_word("use --storage IP", "--storage"));
    assert!(!has_word("use --storage-port N", "--storage"));
    assert!(has_word(".BI -c \", --config\"", "-c"));
    assert!(!has_word("--config", "-c"));
    assert!(has_word("store_path (0)", "store_path"));
    assert!(!has_word("store_path_count", "store_path"));
    assert!(!has_word("a subdir_count", "dir_count"));
}
