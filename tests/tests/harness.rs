//! The harness itself: binaries are built where the test runs, a cloud restarts on its data
//! and ports, and a killed cloud is really gone.

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use skerry_tests::http::healthz;
use skerry_tests::{Cloud, bin, cli, wait_until};

#[test]
fn both_binaries_are_built_next_to_the_tests() {
    for name in ["skerry", "skerry-edge"] {
        let path = bin(name);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(
            path.parent(),
            exe.parent().and_then(|deps| deps.parent()),
            "{}",
            path.display()
        );
        let status = Command::new(&path).arg("--help").output().unwrap().status;
        assert!(status.success(), "{} --help: {status}", path.display());
    }
}

#[test]
fn a_cloud_restarts_on_its_data_and_ports_after_kill_9() {
    let mut cloud = Cloud::start().unwrap();
    let (url, data) = (cloud.url(), cloud.data_dir());
    let out = cli(&cloud, &["env", "create", "kept"]);
    assert_eq!(out.code, 0, "{out}");

    cloud.kill9().unwrap();
    assert!(cloud.pid().is_none());
    assert!(
        !healthz(cloud.listen_addr()),
        "a killed cloud still answers"
    );
    let out = cli(&cloud, &["env", "list"]);
    assert_eq!(out.code, 1, "{out}");

    cloud.restart().unwrap();
    assert_eq!((cloud.url(), cloud.data_dir()), (url, data));
    let out = cli(&cloud, &["env", "show", "kept"]);
    assert_eq!(out.code, 0, "{out}");
    // Restarting a running cloud kills it first.
    let pid = cloud.pid();
    cloud.restart().unwrap();
    assert_ne!(cloud.pid(), pid);
    assert!(wait_until(Duration::from_secs(5), || healthz(
        cloud.listen_addr()
    )));
    assert!(
        cloud.logs().contains("skerry serve is ready"),
        "{}",
        cloud.logs()
    );
}
