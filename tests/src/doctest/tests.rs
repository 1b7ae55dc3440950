//! The docs-example runner's parts on small pages: blocks and markers, directives and
//! here-documents, the README's command form, masks, wildcards and mismatches, bindings.

use super::*;

fn masks() -> Masks {
    Masks {
        page_host: Some("vm".into()),
        actual_host: Some("build-7".into()),
        actual_literal: vec![("/tmp/.tmpXYZ".into(), "/tmp/docs2".into())],
    }
}

#[test]
fn blocks_are_found_with_their_markers_and_steps() {
    let page = "\
# Title

<!-- doc-test: env -->
```console
$ skerry env create plant-a
created environment plant-a
$ skerry env list
NAME  LABELS
...
```

<!-- not-run: needs a registry -->

```console
$ docker pull x
```

```sh
cargo run --release --bin skerry -- serve
```

```
not an example
```
";
    let p = Page::parse("t.md", page).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.blocks.len(), 3);
    let b = &p.blocks[0];
    assert_eq!(b.line, 4);
    assert_eq!(
        b.marker,
        Marker::Run {
            name: Some("env".into()),
            directives: vec![]
        }
    );
    assert_eq!(b.steps.len(), 2);
    assert_eq!(b.steps[0].line, 5);
    assert_eq!(
        b.steps[0].expected,
        Some(vec![(6, "created environment plant-a".into())])
    );
    assert_eq!(
        b.steps[1].expected,
        Some(vec![(8, "NAME  LABELS".into()), (9, "...".into())])
    );
    assert_eq!(
        p.blocks[1].marker,
        Marker::NotRun("needs a registry".into())
    );
    assert_eq!(p.blocks[2].marker, Marker::None);
    assert_eq!(p.blocks[2].steps[0].expected, None);
    assert_eq!(p.unmarked(), vec![18]);
}

#[test]
fn directives_heredocs_and_bad_markers() {
    let page = "\
<!-- doc-test: demo
setup: skerry env create plant-b
agent: gw-2 plant-b raspberry-pi-4
wait: skerry status | grep -q Healthy
-->
```console
$ cat > f <<'EOF'
a
EOF
$ cat f
a
```
";
    let p = Page::parse("t.md", page).unwrap_or_else(|e| panic!("{e}"));
    let Marker::Run { directives, .. } = &p.blocks[0].marker else {
        panic!("not a run marker")
    };
    assert_eq!(
        directives,
        &vec![
            Directive::Setup("skerry env create plant-b".into()),
            Directive::Agent {
                name: "gw-2".into(),
                env: "plant-b".into(),
                profile: Some("raspberry-pi-4".into())
            },
            Directive::Wait("skerry status | grep -q Healthy".into()),
        ]
    );
    assert_eq!(p.blocks[0].steps[0].command, "cat > f <<'EOF'\na\nEOF");
    let p2 = Page::parse(
        "t.md",
        "```yaml\napp: demo\n```\n<!-- doc-test\nfile: demo.yaml\n-->\n```console\n$ cat demo.yaml\napp: demo\n```\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p2.blocks[0].preceding.as_deref(), Some("app: demo\n"));
    let e = Page::parse("t.md", "<!-- doc-test\nfile: x\n-->\n```sh\nx\n```\n").unwrap_err();
    assert!(e.message.contains("file:"), "{e}");
    assert_eq!(p.blocks[0].steps[1].expected, Some(vec![(11, "a".into())]));

    let e = Page::parse("t.md", "<!-- not-run: -->\n```sh\nx\n```\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("reason"), "{e}");
    let e = Page::parse("t.md", "<!-- doc-test\nfrobnicate: x\n-->\n```sh\nx\n```\n").unwrap_err();
    assert!(e.message.contains("frobnicate"), "{e}");
    let e = Page::parse("t.md", "<!-- doc-test\nbackground\n-->\n```sh\nx\ny\n```\n").unwrap_err();
    assert!(e.message.contains("exactly one"), "{e}");
    let e = Page::parse("t.md", "```console\n$ x\n").unwrap_err();
    assert!(e.message.contains("never closed"), "{e}");
}

#[test]
fn the_readme_form_of_a_command_runs_the_built_binary() {
    assert_eq!(
        command_to_run("cargo run --release --bin skerry -- env create plant-a"),
        "skerry env create plant-a"
    );
    assert_eq!(
        command_to_run("cargo run --release --bin skerry-edge -- run --data d"),
        "skerry-edge run --data d"
    );
}

#[test]
fn variable_parts_are_masked() {
    let m = masks();
    let page = "gw-1   c66a7b68-a606-458e-8baa-e12a285f2410   Normal   127.0.0.1   0     2026-11-22T03:06:23.127Z";
    let actual =
        "gw-1 0f6a7b68-a606-458e-8baa-e12a285f2411 Normal 127.0.0.1 0 2026-12-06T20:01:02.5Z";
    assert_eq!(m.line(Side::Page, page), m.line(Side::Actual, actual));
    assert_eq!(
        m.line(Side::Page, page),
        "gw-1 <uuid> Normal 127.0.0.1 0 <time>"
    );
    assert_eq!(
        m.line(Side::Page, "published weather@1.0.0 (digest f7b724736ffc…)"),
        "published weather@1.0.0 (digest <hex>)"
    );
    assert_eq!(
        m.line(Side::Page, "skr1.003d3e0474ff403bb7388849d26814ab.e7f3b6"),
        "skr1.<hex>.e7f3b6"
    );
    assert_eq!(
        m.line(Side::Page, "endpoint=127.0.0.1:7883 api=http://0.0.0.0:80/"),
        "endpoint=127.0.0.1:<port> api=http://0.0.0.0:<port>/"
    );
    assert_eq!(
        m.line(Side::Page, "took 1.25s, then 30ms; Up 6 seconds"),
        "took <dur>, then <dur>; Up <dur>"
    );
    // Words and numbers that only look like parts are left alone.
    assert_eq!(
        m.line(Side::Page, "seq 12345678 defaced weather-a 8080 ab12cd34ef"),
        "seq 12345678 defaced weather-a 8080 <hex>"
    );
    assert_eq!(
        m.line(Side::Page, "x-c66a7b68.demo-1 10.0.0.5:443"),
        "x-<hex>.demo-1 10.0.0.5:443"
    );
    // The host's name on either side, as a whole word only.
    assert_eq!(m.line(Side::Page, "vm   local  vmx"), "<host> local vmx");
    assert_eq!(m.line(Side::Actual, "build-7 local"), "<host> local");
    assert_eq!(
        m.line(Side::Actual, "dir=/tmp/.tmpXYZ/edge/identity"),
        "dir=/tmp/docs2/edge/identity"
    );
    assert_eq!(
        m.line(Side::Page, "at 2026-11-22T03:06:23+01:00."),
        "at <time>."
    );
}

#[test]
fn wildcards_align_and_mismatches_are_shown_with_the_page_line() {
    let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let exp = s(&["a", "...", "d"]);
    assert_eq!(
        align(&exp, &s(&["a", "b", "c", "d"])),
        Some(vec![(0, 0), (2, 3)])
    );
    assert_eq!(align(&exp, &s(&["a", "d"])), Some(vec![(0, 0), (2, 1)]));
    assert_eq!(align(&exp, &s(&["a", "b"])), None);
    assert_eq!(align(&s(&["a"]), &s(&["a", "b"])), None);
    assert!(align(&s(&["a", "..."]), &s(&["a", "b"])).is_some());
    assert!(align(&s(&["pulled: ..."]), &s(&["pulled: no such host"])).is_some());
    assert!(align(&s(&["pulled: ..."]), &s(&["pulled:"])).is_none());
    assert!(align(&s(&["pulled: ..."]), &s(&["failed: no such host"])).is_none());
    let expected = vec![(10, "a".to_owned()), (11, "b".to_owned())];
    let d = diff("docs/cli.md", &expected, &s(&["a", "c"]));
    assert!(d.contains("first difference at docs/cli.md:11:"), "{d}");
    assert!(d.contains("page:    b") && d.contains("program: c"), "{d}");
    let d = diff("docs/cli.md", &expected, &s(&["a", "b", "extra"]));
    assert!(d.contains("more lines"), "{d}");
}

#[test]
fn values_carry_into_later_commands() {
    let mut b = Bindings::default();
    b.bind("127.0.0.1:8080", "127.0.0.1:40001");
    b.learn(
        "skr1.003d3e0474ff403bb7388849d26814ab.e7f3b62150e41dcc765814bc371aaf763f0099efe5e25c744cb245c5e59ededb.3826a9d5",
        "skr1.aaaa3e0474ff403bb7388849d26814ab.f7f3b62150e41dcc765814bc371aaf763f0099efe5e25c744cb245c5e59ededb.4826a9d5",
    );
    assert_eq!(
        b.apply("skerry-edge run --cloud http://127.0.0.1:8080 --token skr1.003d3e04…"),
        "skerry-edge run --cloud http://127.0.0.1:40001 --token skr1.aaaa3e0474ff403bb7388849d26814ab.f7f3b62150e41dcc765814bc371aaf763f0099efe5e25c744cb245c5e59ededb.4826a9d5"
    );
    b.learn(
        "node gw-1 (c66a7b68-a606-458e-8baa-e12a285f2410)",
        "node gw-1 (11111111-a606-458e-8baa-e12a285f2410)",
    );
    assert_eq!(
        b.apply("skerry node show c66a7b68-a606-458e-8baa-e12a285f2410"),
        "skerry node show 11111111-a606-458e-8baa-e12a285f2410"
    );
    // Nothing learnt from lines whose parts do not pair up.
    let before = b.clone().map.len();
    b.learn("a 0123456789abcdef", "a");
    assert_eq!(b.map.len(), before);
    assert_eq!(b.apply("echo unrelated"), "echo unrelated");
}
