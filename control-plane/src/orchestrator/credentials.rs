//! The credential a sandbox's gateway re-applies fetch with, if they must:
//! that of the session which last deployed into the sandbox. Only the
//! session's token hash is kept here; the credential itself stays with the
//! session ([`Sessions`]), so it is gone once the session ends (logout,
//! expiry), as docs/SECURITY.md promises.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sdp_bus::GitCredential;

use crate::sessions::Sessions;

#[derive(Clone)]
pub struct ReapplyCredentials {
    sessions: Sessions,
    /// Sandbox → token hash of the session of its last deploy.
    by_sandbox: Arc<Mutex<HashMap<String, String>>>,
}

impl ReapplyCredentials {
    pub fn new(sessions: Sessions) -> Self {
        Self {
            sessions,
            by_sandbox: Arc::default(),
        }
    }

    /// Re-applies of `sandbox` use the credential of this session.
    pub fn remember(&self, sandbox: &str, token_hash: &str) {
        self.map().insert(sandbox.to_owned(), token_hash.to_owned());
    }

    pub fn forget(&self, sandbox: &str) {
        self.map().remove(sandbox);
    }

    /// The session (token hash) and its credential for re-applies of
    /// `sandbox`, while that session lives.
    pub fn get(&self, sandbox: &str) -> Option<(String, GitCredential)> {
        let hash = self.map().get(sandbox).cloned()?;
        match self.sessions.credential_of(&hash) {
            Some(credential) => Some((hash, credential)),
            None => {
                self.map().remove(sandbox);
                None
            }
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.by_sandbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sdp_bus::Secret;

    use super::*;
    use crate::store::Store;

    fn sessions(dir: &tempfile::TempDir, max: Duration) -> Sessions {
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        Sessions::new(store, Duration::from_secs(3600), max)
    }

    fn credential() -> GitCredential {
        GitCredential {
            username: "alice".into(),
            password: Secret::new("canary-password".to_owned()),
        }
    }

    #[test]
    fn logout_drops_the_reapply_credential() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sessions = sessions(&dir, Duration::from_secs(3600));
        let credentials = ReapplyCredentials::new(sessions.clone());
        let new = sessions.create(credential()).expect("session");
        credentials.remember("alpha", &new.session.token_hash);
        let (hash, kept) = credentials.get("alpha").expect("kept while logged in");
        assert_eq!(hash, new.session.token_hash);
        assert_eq!(kept.username, "alice");

        sessions.end(&new.session.token_hash).expect("logout");
        assert!(credentials.get("alpha").is_none(), "used after logout");
        assert!(
            credentials.map().is_empty(),
            "still remembered after logout"
        );
    }

    #[test]
    fn session_expiry_drops_the_reapply_credential() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A session that ends the moment it starts.
        let sessions = sessions(&dir, Duration::ZERO);
        let credentials = ReapplyCredentials::new(sessions.clone());
        let new = sessions.create(credential()).expect("session");
        credentials.remember("alpha", &new.session.token_hash);
        assert!(credentials.get("alpha").is_none(), "used after expiry");
        sessions.sweep().expect("sweep");
        assert!(sessions.credential(&new.session).is_none());
    }

    #[test]
    fn teardown_forgets_the_sandbox() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sessions = sessions(&dir, Duration::from_secs(3600));
        let credentials = ReapplyCredentials::new(sessions.clone());
        let new = sessions.create(credential()).expect("session");
        credentials.remember("alpha", &new.session.token_hash);
        credentials.forget("alpha");
        assert!(credentials.get("alpha").is_none());
    }
}
