//! Facts about the host and the agent's own process, read once where
//! they are needed: the host's name and the user the agent runs as.

/// The host's name (for heartbeats and the default agent id).
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The uid and gid the agent runs as (from `/proc/self`, which belongs to
/// the process's own user).
pub fn agent_user() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or((u32::MAX, u32::MAX), |m| (m.uid(), m.gid()))
}
