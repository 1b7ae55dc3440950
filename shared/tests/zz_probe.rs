#[test]
fn probe() {
    let head = "app: a\nversion: 1.0.0\n";
    let entries: Vec<String> = (0..200).map(|i| format!("V{i}: x")).collect();
    let mut bomb = format!("{head}components:\n  - name: c0\n    exec: [a]\n    env: &e {{ {} }}\n", entries.join(", "));
    for i in 1..1000 { bomb.push_str(&format!("  - name: c{i}\n    exec: [a]\n    env: *e\n")); }
    let t = std::time::Instant::now();
    for y in [
        format!("{head}components: []\n---\napp: b\n"),
        bomb,
    ] {
        println!("{:?}\n   => {:?}", &y[..y.len().min(60)], skerry_shared::manifest::parse_yaml(&y).err().map(|e| e.errors));
    }
    println!("{:?}", t.elapsed());
}
