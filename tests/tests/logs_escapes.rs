//! Control characters an app writes reach the operator's terminal escaped: a real
//! `skerry serve`, a real agent and a real container whose output would forge a line of
//! another node (`\r`, `ESC[2K`), retitle the terminal (`ESC]0;...BEL`), and carry DEL and
//! a C1 control (U+009B, CSI). `skerry logs` in table mode shows escapes (`\r`, `\xHH`),
//! keeps tabs, and never prints a control character; `-o json` keeps the exact text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::agent::publish_and_deploy;
use skerry_tests::images::busybox_image;
use skerry_tests::{Cloud, cli, wait_for};

/// The lines the app writes, as they must come back in `-o json`.
const FORGED: &str = "boot ok\r\u{1b}[2Kgw-9  db-0  (stdout)  all good";
const TITLE: &str = "title \u{1b}]0;owned\u{7} del \u{7f} csi \u{9b}31m tab\tkept";

/// The same lines as the table must show them.
const FORGED_SHOWN: &str = "boot ok\\r\\x1b[2Kgw-9  db-0  (stdout)  all good";
const TITLE_SHOWN: &str = "title \\x1b]0;owned\\x07 del \\x7f csi \\x9b31m tab\tkept";

fn manifest(image: &str) -> String {
    // printf's octal escapes: \015 CR, \033 ESC, \007 BEL, \177 DEL, \302\233 U+009B in
    // UTF-8, \011 tab. The lines go to standard output and to a file in the log_dir.
    let script = r"printf 'boot ok\015\033[2Kgw-9  db-0  (stdout)  all good\n'; printf 'title \033]0;owned\007 del \177 csi \302\23331m tab\011kept\n'; printf 'boot ok\015\033[2Kgw-9  db-0  (stdout)  all good\n' >> /logs/app.log; exec sleep 100000";
    format!(
        r#"app: noisy
version: 1.0.0
components:
  - name: web
    image: {image}
    pull: never
    log_dir: /logs
    command: ["sh", "-c", "{}"]
"#,
        script.replace('\\', "\\\\")
    )
}

#[test]
fn logs_escape_control_characters_in_tables_and_keep_them_in_json() {
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let agent = Agent::enroll(&cloud, "plant", "gw-1").unwrap();
    let instance = publish_and_deploy(&cloud, &agent, "plant", "noisy", &manifest(&image)).unwrap();

    // -o json: the exact text, control characters and all.
    let texts = |answer: &Value| -> Vec<(String, String)> {
        answer["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["file"].as_str().unwrap().to_owned(),
                    l["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let lines = wait_for(Duration::from_secs(90), || {
        let out = cli(&cloud, &["logs", &instance, "-o", "json"]);
        assert_eq!(out.code, 0, "{out}");
        let lines = texts(&out.json().unwrap());
        (lines.len() >= 3).then_some(lines)
    })
    .unwrap_or_else(|| panic!("the app's lines did not arrive\n{}", agent.logs()));
    let has = |file: &str, text: &str| lines.iter().any(|(f, t)| f == file && t == text);
    assert!(has("(stdout)", FORGED), "{lines:?}");
    assert!(has("(stdout)", TITLE), "{lines:?}");
    assert!(has("app.log", FORGED), "{lines:?}");

    // Table: each line behind its real origin, escaped; no control character but tab and
    // the newlines between lines reaches the terminal.
    let out = cli(&cloud, &["logs", &instance]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        !out.stdout
            .chars()
            .any(|c| c.is_control() && c != '\t' && c != '\n'),
        "a control character reached the terminal: {:?}",
        out.stdout
    );
    let table: Vec<&str> = out.stdout.lines().collect();
    let shown = |file: &str, text: &str| {
        table.iter().any(|l| {
            l.starts_with("gw-1")
                && l.split_whitespace().nth(1) == Some("web-0")
                && l.split_whitespace().nth(2) == Some(file)
                && l.ends_with(text)
        })
    };
    assert!(shown("(stdout)", FORGED_SHOWN), "{}", out.stdout);
    assert!(shown("(stdout)", TITLE_SHOWN), "{}", out.stdout);
    assert!(shown("app.log", FORGED_SHOWN), "{}", out.stdout);
    // Every line printed is one of the app's, behind gw-1: none looks like another node's.
    assert_eq!(table.len(), 3, "{}", out.stdout);
    assert!(
        table.iter().all(|l| l.starts_with("gw-1  ")),
        "{}",
        out.stdout
    );
}
