//! Reading a process's memory figures from `/proc/PID/status`.

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, `RssAnon`, ...), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    status_number(pid, field).map(|kib| kib * 1024)
}

/// The number a field of `/proc/PID/status` starts with (`Threads`, or a `kB` field).
pub fn status_number(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The resident set size now (`VmRSS`), in bytes.
pub fn rss(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS")
}

/// The peak resident set size (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmHWM")
}

/// The pid of the first process whose command name (`/proc/PID/comm`) is `name`.
pub fn pid_of(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim_end() == name).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let rss = super::rss(me).unwrap_or(0);
        let peak = super::peak_rss(me).unwrap_or(0);
        // Both read, and non-zero. Not `peak >= rss`: the kernel folds per-thread RSS
        // counters into VmHWM lazily, so the peak can trail the current RSS for a moment.
        assert!(rss > 0 && peak > 0, "{rss} {peak}");
        assert_eq!(super::status_bytes(me, "NoSuchField"), None);
        assert!(super::status_number(me, "Threads").unwrap_or(0) >= 1);
    }
}
