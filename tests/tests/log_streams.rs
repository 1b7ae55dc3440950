//! Log reads against a real `skerry serve` and a real agent: a read of thousands of lines
//! is sent page by page and answers as the small pages a client reads one after the other
//! do, and a follow delivers the same lines in order. (The `limit` maxima of log reads are
//! checked with those of event reads, in `event_streams.rs`.)

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use skerry_tests::Cloud;
use skerry_tests::http::{client_from_with, loopback, open, runtime};

/// The lines of a logs answer: (cursor, file, text).
fn log_lines(answer: &Value) -> Vec<(u64, String, String)> {
    answer["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["cursor"].as_u64().unwrap(),
                l["file"].as_str().unwrap().to_owned(),
                l["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A read of 10,000 log lines is sent page by page (pages of at most 64 KiB of text): the
/// answer is the same as the small pages a client reads one after the other, with the same
/// `next`, `dropped` and `waiting`; a `limit` in the middle stops there; a follow delivers
/// the same lines, in order.
#[test]
fn a_large_log_read_is_sent_in_pages_and_answers_as_small_pages_do() {
    use skerry_tests::agent::Agent;
    use skerry_tests::agent::publish_and_deploy;
    use skerry_tests::images::busybox_image;
    const LINES: usize = 3000;
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    let token = cloud.token().to_owned();
    let api = cloud.api().unwrap();
    api.post_json("/api/v1/environments", &json!({ "name": "plant" }))
        .unwrap()
        .expect_status(201)
        .unwrap();
    let agent = Agent::enroll(&cloud, "plant", "gw-1").unwrap();
    // 3,000 numbered lines of about 200 bytes each (600 KB: ten pages of text), to
    // standard output and to a file of the log_dir, then nothing.
    let pad = "x".repeat(190);
    let manifest = format!(
        r#"app: wordy
version: 1.0.0
components:
  - name: writer
    image: {image}
    pull: never
    log_dir: /logs
    command: ["sh", "-c", "i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); echo \"$i {pad}\"; echo \"$i {pad}\" >> /logs/w.log; done; exec sleep 100000"]
"#
    );
    let instance = publish_and_deploy(&cloud, &agent, "plant", "wordy", &manifest).unwrap();
    let all = format!("/api/v1/logs?instance={instance}&limit=10000");
    let whole = skerry_tests::wait_for(Duration::from_secs(120), || {
        let answer = api.get_json(&all).unwrap();
        (answer["lines"].as_array().unwrap().len() >= 2 * LINES).then_some(answer)
    })
    .unwrap_or_else(|| panic!("the app's lines did not arrive\n{}", agent.logs()));
    let lines = log_lines(&whole);
    assert_eq!(lines.len(), 2 * LINES);
    let text_bytes: usize = lines.iter().map(|l| l.2.len()).sum();
    println!("{} lines, {text_bytes} bytes of text", lines.len());

    // The same, in pages of 500 (not a stream), each from the last one's next.
    let mut paged = Vec::new();
    let mut after = 0;
    let last = loop {
        let page = api
            .get_json(&format!(
                "/api/v1/logs?instance={instance}&after={after}&limit=500"
            ))
            .unwrap();
        let got = log_lines(&page);
        after = page["next"].as_u64().unwrap();
        let done = got.len() < 500;
        paged.extend(got);
        if done {
            break page;
        }
    };
    assert_eq!(paged, lines, "the streamed read differs from the pages");
    assert_eq!(whole["next"], last["next"]);
    assert_eq!(whole["dropped"], last["dropped"]);
    assert_eq!(whole["waiting"], last["waiting"]);
    let cursors: Vec<u64> = lines.iter().map(|l| l.0).collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors out of order"
    );

    // A limit in the middle of a page of text: exactly that many, and next is the last one's.
    let part = api
        .get_json(&format!("/api/v1/logs?instance={instance}&limit=2345"))
        .unwrap();
    assert_eq!(log_lines(&part), lines[..2345].to_vec());
    assert_eq!(part["next"].as_u64(), Some(lines[2344].0));

    // A follow: the same lines, in order.
    let rt = runtime();
    let url = format!(
        "{}/api/v1/logs?instance={instance}&follow=true",
        cloud.url()
    );
    let followed = rt.block_on(async {
        let mut answer = open(&client_from_with(loopback(0), Some(&token)), &url).await;
        assert_eq!(answer.status().as_u16(), 200);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while got.len() < lines.len() {
            let chunk = answer.chunk().await.unwrap().expect("the stream ended");
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if line.len() > 1 {
                    let l: Value = serde_json::from_slice(&line).unwrap();
                    got.push((
                        l["cursor"].as_u64().unwrap(),
                        l["file"].as_str().unwrap().to_owned(),
                        l["text"].as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
        got
    });
    assert_eq!(followed, lines);
}
