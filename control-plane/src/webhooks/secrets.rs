//! The two secret files of the control plane's config, read once at start
//! (`run`, and `--check-config`): a file named but unreadable or empty is
//! a startup error naming the key and the path, never the contents.
//!
//! - `webhooks.bitbucket_secret_file`: the webhook secret, the file's whole
//!   text with surrounding whitespace (a trailing newline) trimmed.
//! - `git.service_credential_file`: a read-only git credential, either one
//!   line `username:password` (split at the first `:`) or two lines, the
//!   user name then the password. Only line ends are trimmed, so a
//!   password may hold any other character.

use std::path::Path;

use sdp_bus::{GitCredential, Secret};

use crate::config::Config;

pub const SECRET_KEY: &str = "webhooks.bitbucket_secret_file";
pub const CREDENTIAL_KEY: &str = "git.service_credential_file";

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{key}: cannot read {path}")]
    Unreadable {
        key: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: {path} is empty")]
    Empty { key: &'static str, path: String },
    #[error(
        "{key}: {path} holds neither `username:password` on one line nor a user name and a password on two lines"
    )]
    Malformed { key: &'static str, path: String },
}

/// What the files hold. `Debug` shows neither secret.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    pub hook_secret: Option<Secret>,
    pub service_credential: Option<GitCredential>,
}

/// Reads the files `config` names (none named: nothing to read).
pub fn load(config: &Config) -> Result<Secrets, SecretFileError> {
    let hook_secret = match &config.webhooks.bitbucket_secret_file {
        Some(path) => {
            let text = read(SECRET_KEY, path)?;
            let secret = text.trim();
            if secret.is_empty() {
                return Err(empty(SECRET_KEY, path));
            }
            Some(Secret::new(secret))
        }
        None => None,
    };
    let service_credential = match &config.git.service_credential_file {
        Some(path) => {
            let text = read(CREDENTIAL_KEY, path)?;
            if text.trim().is_empty() {
                return Err(empty(CREDENTIAL_KEY, path));
            }
            Some(
                parse_credential(&text).ok_or_else(|| SecretFileError::Malformed {
                    key: CREDENTIAL_KEY,
                    path: path.display().to_string(),
                })?,
            )
        }
        None => None,
    };
    Ok(Secrets {
        hook_secret,
        service_credential,
    })
}

fn read(key: &'static str, path: &Path) -> Result<String, SecretFileError> {
    std::fs::read_to_string(path).map_err(|source| SecretFileError::Unreadable {
        key,
        path: path.display().to_string(),
        source,
    })
}

fn empty(key: &'static str, path: &Path) -> SecretFileError {
    SecretFileError::Empty {
        key,
        path: path.display().to_string(),
    }
}

/// `username:password`, or two lines; `None` if it is neither or a part
/// is empty.
pub fn parse_credential(text: &str) -> Option<GitCredential> {
    let mut lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let (username, password) = match lines.as_slice() {
        [one] => one.split_once(':')?,
        [username, password] => (*username, *password),
        _ => return None,
    };
    let username = username.trim();
    if username.is_empty() || password.is_empty() {
        return None;
    }
    Some(GitCredential {
        username: username.to_owned(),
        password: Secret::new(password),
    })
}

/// Whether a secret file can be read by every user of the host (worth a
/// warning: owner, or owner and the service's group, only).
pub fn readable_by_everyone(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn config(secret: Option<PathBuf>, credential: Option<PathBuf>) -> Config {
        let mut config = Config::dev();
        config.webhooks.bitbucket_secret_file = secret;
        config.git.service_credential_file = credential;
        config
    }

    #[test]
    fn a_credential_is_one_line_with_a_colon_or_two_lines() {
        let one = parse_credential("svc:pa:ss word\n").expect("one line");
        assert_eq!(one.username, "svc");
        assert_eq!(one.password.expose(), "pa:ss word");
        let two = parse_credential("svc\r\n p:w \r\n\n").expect("two lines");
        assert_eq!(two.username, "svc");
        assert_eq!(two.password.expose(), " p:w ");
        for bad in ["", "svc", "svc:", ":pw", "a\nb\nc", "\npw"] {
            assert!(parse_credential(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn files_are_read_and_their_errors_name_key_and_path_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        let credential = dir.path().join("credential");
        std::fs::write(&secret, "  hook-canary-secret \n").expect("write");
        std::fs::write(&credential, "svc:credential-canary\n").expect("write");
        let loaded = load(&config(Some(secret.clone()), Some(credential.clone()))).expect("loads");
        assert_eq!(
            loaded.hook_secret.as_ref().map(Secret::expose),
            Some("hook-canary-secret")
        );
        let debug = format!("{loaded:?}");
        assert!(!debug.contains("canary"), "{debug}");

        assert!(
            load(&config(None, None))
                .expect("nothing named")
                .hook_secret
                .is_none()
        );
        let missing = load(&config(Some(dir.path().join("nope")), None)).expect_err("missing");
        assert!(missing.to_string().contains(SECRET_KEY), "{missing}");
        std::fs::write(&secret, " \n").expect("write");
        let empty = load(&config(Some(secret), None)).expect_err("empty");
        assert!(empty.to_string().contains("is empty"), "{empty}");
        std::fs::write(&credential, "credential-canary\n").expect("write");
        let malformed = load(&config(None, Some(credential))).expect_err("malformed");
        assert!(
            malformed.to_string().contains(CREDENTIAL_KEY),
            "{malformed}"
        );
        assert!(!malformed.to_string().contains("canary"), "{malformed}");
    }
}
