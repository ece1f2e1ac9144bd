//! Bitbucket build statuses: the key of a sandbox's service, and the
//! request for Cloud or Data Center. Both take the same body
//! (`state`, `key`, `name`, `url`, `description`).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::{BitbucketConfig, Flavour};
use crate::store::BuildState;

/// Bitbucket Cloud takes keys of at most 40 characters.
pub const KEY_MAX: usize = 40;

/// The build status key of `repo` in `sandbox`: `sdp-<sandbox>-<repo>`, or,
/// when that is longer than [`KEY_MAX`], its first characters and a hash of
/// the whole, so two long names never share a key and the same names
/// always give the same one.
pub fn key(sandbox: &str, repo: &str) -> String {
    let full = format!("sdp-{sandbox}-{repo}");
    if full.len() <= KEY_MAX {
        return full;
    }
    let hash = hex::encode(Sha256::digest(full.as_bytes()));
    // Names are ASCII (validated), so byte offsets are characters.
    let head: String = full.chars().take(KEY_MAX - 9).collect();
    format!("{head}-{}", &hash[..8])
}

/// Where a build status of `commit` goes. `None`: Cloud and no workspace
/// (the config check refuses that at start).
pub fn status_url(
    config: &BitbucketConfig,
    flavour: Flavour,
    repo: &str,
    commit: &str,
) -> Option<String> {
    let base = config.base_url();
    match flavour {
        Flavour::Cloud => {
            let workspace = config.workspace.as_deref()?;
            let slug = config.repo_slugs.get(repo).map_or(repo, String::as_str);
            Some(format!(
                "{base}/2.0/repositories/{workspace}/{slug}/commit/{commit}/statuses/build"
            ))
        }
        Flavour::DataCenter => Some(format!("{base}/rest/build-status/1.0/commits/{commit}")),
    }
}

/// The body both flavours take.
pub fn status_body(
    state: BuildState,
    key: &str,
    name: &str,
    url: &str,
    description: &str,
) -> Value {
    json!({
        "state": state.as_str(),
        "key": key,
        "name": name,
        "url": url,
        // Data Center refuses descriptions past 255 characters.
        "description": description.chars().take(255).collect::<String>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_deterministic_and_distinct() {
        assert_eq!(key("alpha", "users"), "sdp-alpha-users");
        let long_a = key("a-very-long-sandbox-name-for-tests", "users-service-x");
        let long_b = key("a-very-long-sandbox-name-for-tests", "users-service-y");
        assert_eq!(long_a.len(), KEY_MAX);
        assert_eq!(
            long_a,
            key("a-very-long-sandbox-name-for-tests", "users-service-x")
        );
        assert_ne!(long_a, long_b);
        for (s, r) in [("s", "r"), (&"x".repeat(63)[..], &"y".repeat(63)[..])] {
            assert!(key(s, r).len() <= KEY_MAX);
        }
    }

    #[test]
    fn urls_per_flavour() {
        let mut config = BitbucketConfig {
            flavour: Some(Flavour::Cloud),
            api_url: Some("http://127.0.0.1:9/".into()),
            workspace: Some("team".into()),
            ..BitbucketConfig::default()
        };
        config.repo_slugs.insert("users".into(), "users-svc".into());
        assert_eq!(
            status_url(&config, Flavour::Cloud, "users", "abc").as_deref(),
            Some("http://127.0.0.1:9/2.0/repositories/team/users-svc/commit/abc/statuses/build")
        );
        assert_eq!(
            status_url(&config, Flavour::Cloud, "orders", "abc").as_deref(),
            Some("http://127.0.0.1:9/2.0/repositories/team/orders/commit/abc/statuses/build")
        );
        assert_eq!(
            status_url(&config, Flavour::DataCenter, "users", "abc").as_deref(),
            Some("http://127.0.0.1:9/rest/build-status/1.0/commits/abc")
        );
    }
}
