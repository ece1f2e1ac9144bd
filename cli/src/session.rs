//! The stored login: `<config dir>/sdp/session.json` (`$XDG_CONFIG_HOME`
//! or `~/.config` on Linux) holding the control plane's URL, the bearer
//! token and the user name. The directory is made 0700 and the file 0600
//! (written to a temporary file, then renamed). `SDP_URL` / `SDP_TOKEN`
//! override what is stored; a stored token is only sent to the URL it was
//! issued by.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// What the process environment says, read once in `main` so the rest of
/// the crate never reads it.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `SDP_TOKEN`: a bearer token that wins over the stored one.
    pub token: Option<String>,
    /// The user's config dir (`dirs::config_dir()`).
    pub config_dir: Option<PathBuf>,
    /// `NO_COLOR` set and not empty.
    pub no_color: bool,
    /// `SDP_NATS_USER` / `SDP_NATS_PASSWORD` for `sdp tap`.
    pub nats_user: Option<String>,
    pub nats_password: Option<String>,
}

impl Env {
    pub fn from_process() -> Env {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Env {
            token: var("SDP_TOKEN"),
            config_dir: dirs::config_dir(),
            no_color: var("NO_COLOR").is_some(),
            nats_user: var("SDP_NATS_USER"),
            nats_password: var("SDP_NATS_PASSWORD"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub url: String,
    pub token: String,
    pub username: String,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// Where the session lives.
pub fn path(env: &Env) -> Result<PathBuf, CliError> {
    env.config_dir
        .as_ref()
        .map(|dir| dir.join("sdp").join("session.json"))
        .ok_or_else(|| {
            CliError::Usage("no config directory: set XDG_CONFIG_HOME or HOME".to_owned())
        })
}

/// The stored session, if any. A file that does not parse counts as none.
pub fn load(env: &Env) -> Result<Option<Stored>, CliError> {
    let path = path(env)?;
    match std::fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CliError::File {
            action: "read",
            path,
            source,
        }),
    }
}

pub fn save(env: &Env, stored: &Stored) -> Result<PathBuf, CliError> {
    let path = path(env)?;
    let file_error = |action, path: &Path| {
        let path = path.to_owned();
        move |source| CliError::File {
            action,
            path,
            source,
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(file_error("create", dir))?;
    let temp = dir.join(format!(".session.{}.tmp", std::process::id()));
    let bytes = serde_json::to_vec_pretty(stored).unwrap_or_default();
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()
        });
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(file_error("write", &temp)(source));
    }
    std::fs::rename(&temp, &path).map_err(file_error("write", &path))?;
    Ok(path)
}

/// Removes the stored session; true if there was one.
pub fn remove(env: &Env) -> Result<bool, CliError> {
    let path = path(env)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(CliError::File {
            action: "remove",
            path,
            source,
        }),
    }
}

/// The control plane to talk to and the token to send: `--url`/`SDP_URL`
/// over the stored URL; `SDP_TOKEN` over the stored token, which is used
/// only with the URL it came from.
pub fn resolve(
    url_flag: Option<&str>,
    env_token: Option<&str>,
    stored: Option<&Stored>,
) -> Result<(String, Option<String>), CliError> {
    let url = url_flag
        .map(|u| u.trim_end_matches('/').to_owned())
        .or_else(|| stored.map(|s| s.url.clone()))
        .ok_or(CliError::NoUrl)?;
    let token = env_token.map(str::to_owned).or_else(|| {
        stored
            .filter(|s| s.url.trim_end_matches('/') == url)
            .map(|s| s.token.clone())
    });
    Ok((url, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(url: &str) -> Stored {
        Stored {
            url: url.into(),
            token: "stored-token".into(),
            username: "dev".into(),
            expires_at: None,
        }
    }

    #[test]
    fn a_stored_token_goes_only_to_its_own_url() {
        let s = stored("http://a:8080");
        assert_eq!(
            resolve(None, None, Some(&s)).expect("resolved"),
            ("http://a:8080".into(), Some("stored-token".into()))
        );
        assert_eq!(
            resolve(Some("http://b:8080/"), None, Some(&s)).expect("resolved"),
            ("http://b:8080".into(), None)
        );
        assert_eq!(
            resolve(Some("http://b:8080"), Some("env"), Some(&s)).expect("resolved"),
            ("http://b:8080".into(), Some("env".into()))
        );
        assert!(matches!(resolve(None, None, None), Err(CliError::NoUrl)));
    }

    #[test]
    fn saved_with_mode_0600_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let env = Env {
            config_dir: Some(dir.path().to_owned()),
            ..Env::default()
        };
        let path = save(&env, &stored("http://a")).expect("saved");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().expect("dir"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(load(&env).expect("load"), Some(stored("http://a")));
        assert!(remove(&env).expect("remove"));
        assert_eq!(load(&env).expect("load"), None);
        assert!(!remove(&env).expect("remove again"));
    }
}
