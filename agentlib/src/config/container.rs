//! `[container]`: how deployed containers are confined beyond what every
//! one gets (no privileges, `no-new-privileges`, every capability dropped,
//! read-only mounts, memory and CPU limits).
//!
//! ```toml
//! [container]
//! pids_limit = 256              # processes and threads in one container
//! cap_add = ["NET_BIND_SERVICE"] # given back after dropping ALL
//! user = "65534:65534"          # uid[:gid] (or a name the image knows)
//! read_only_root = true         # read-only root filesystem ...
//! tmp_size = "64m"              # ... with a tmpfs /tmp of this size
//! ```

use serde::Deserialize;

use super::ByteSize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    /// Most processes (threads included) a container may run: a fork bomb
    /// in a branch stops there instead of exhausting the host.
    #[serde(default = "default_pids_limit")]
    pub pids_limit: i64,
    /// Capabilities given back after all are dropped (`NET_BIND_SERVICE`
    /// or `CAP_NET_BIND_SERVICE`); `ALL` is refused.
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Run as this user (`uid`, `uid:gid` or a name the image knows)
    /// instead of the image's (often root).
    #[serde(default)]
    pub user: Option<String>,
    /// Mount the container's root filesystem read-only, with a tmpfs on
    /// `/tmp` (`noexec`, `nosuid`) of `tmp_size`.
    #[serde(default)]
    pub read_only_root: bool,
    #[serde(default = "default_tmp_size")]
    pub tmp_size: ByteSize,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        Self {
            pids_limit: default_pids_limit(),
            cap_add: Vec::new(),
            user: None,
            read_only_root: false,
            tmp_size: default_tmp_size(),
        }
    }
}

fn default_pids_limit() -> i64 {
    256
}

fn default_tmp_size() -> ByteSize {
    ByteSize(64 << 20)
}

impl ContainerConfig {
    /// Checks what serde cannot: `(key, reason)` of the first bad value.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.pids_limit < 16 {
            return Err((
                "container.pids_limit",
                "must be at least 16 (a service needs a few threads)".into(),
            ));
        }
        for cap in &self.cap_add {
            let name = cap.strip_prefix("CAP_").unwrap_or(cap);
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                return Err((
                    "container.cap_add",
                    format!("{cap:?} is not a capability name like NET_BIND_SERVICE"),
                ));
            }
            if name == "ALL" {
                return Err((
                    "container.cap_add",
                    "ALL would give back every capability; name the ones needed".into(),
                ));
            }
        }
        if let Some(user) = &self.user {
            let part_ok = |p: &str| {
                !p.is_empty()
                    && p.len() <= 32
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                    && !p.starts_with('-')
            };
            let mut parts = user.splitn(2, ':');
            let ok = parts.next().is_some_and(part_ok) && parts.next().is_none_or(part_ok);
            if !ok {
                return Err((
                    "container.user",
                    format!("{user:?} is not a user like 1000, 1000:1000 or nobody"),
                ));
            }
        }
        Ok(())
    }

    /// The `/tmp` tmpfs options when the root is read-only.
    pub fn tmpfs_options(&self) -> String {
        format!("rw,noexec,nosuid,nodev,size={}", self.tmp_size.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_limit_pids_and_add_nothing_back() {
        let config = ContainerConfig::default();
        assert_eq!(config.pids_limit, 256);
        assert!(config.cap_add.is_empty());
        assert_eq!(config.user, None);
        assert!(!config.read_only_root);
        assert_eq!(config.check(), Ok(()));
    }

    #[test]
    fn bad_values_name_their_key() {
        let with = |f: fn(&mut ContainerConfig)| {
            let mut config = ContainerConfig::default();
            f(&mut config);
            config.check().map_err(|(key, _)| key)
        };
        assert_eq!(with(|c| c.pids_limit = 0), Err("container.pids_limit"));
        assert_eq!(
            with(|c| c.cap_add = vec!["ALL".into()]),
            Err("container.cap_add")
        );
        assert_eq!(
            with(|c| c.cap_add = vec!["CAP_ALL".into()]),
            Err("container.cap_add")
        );
        assert_eq!(
            with(|c| c.cap_add = vec!["net_admin".into()]),
            Err("container.cap_add")
        );
        assert_eq!(with(|c| c.user = Some("".into())), Err("container.user"));
        assert_eq!(
            with(|c| c.user = Some("1:2:3".into())),
            Err("container.user")
        );
        assert_eq!(with(|c| c.user = Some("-x".into())), Err("container.user"));
        assert_eq!(
            with(|c| {
                c.cap_add = vec!["NET_BIND_SERVICE".into(), "CAP_CHOWN".into()];
                c.user = Some("65534:65534".into());
            }),
            Ok(())
        );
    }
}
