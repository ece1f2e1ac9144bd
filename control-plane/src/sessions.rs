//! Sessions: a 256-bit random token, stored as its SHA-256, with idle and
//! absolute expiry. The user's git credential lives only in this process's
//! memory, keyed by the token hash, and is dropped at logout or expiry; after
//! a restart a session still proves who the user is but must log in again
//! before deploying.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::RngCore;
use sdp_bus::GitCredential;
use sha2::{Digest, Sha256};

use crate::store::{SessionRow, Store, StoreError};

/// Seconds since the epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[derive(Clone)]
pub struct Sessions {
    store: Store,
    credentials: Arc<RwLock<HashMap<String, GitCredential>>>,
    idle: Duration,
    max: Duration,
}

/// A live session, as handlers see it.
#[derive(Clone, Debug)]
pub struct Session {
    pub username: String,
    pub token_hash: String,
    pub expires_at: i64,
}

pub struct NewSession {
    /// The token to hand to the client; it is not kept anywhere.
    pub token: String,
    pub session: Session,
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Sessions {
    pub fn new(store: Store, idle: Duration, max: Duration) -> Self {
        Self {
            store,
            credentials: Arc::default(),
            idle,
            max,
        }
    }

    pub fn create(&self, credential: GitCredential) -> Result<NewSession, StoreError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let token_hash = hash_token(&token);
        let now = now();
        let expires_at = now + self.max.as_secs() as i64;
        let username = credential.username.clone();
        self.store.insert_session(
            &token_hash,
            &SessionRow {
                username: username.clone(),
                created_at: now,
                last_seen: now,
                expires_at,
            },
        )?;
        self.credentials
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token_hash.clone(), credential);
        Ok(NewSession {
            token,
            session: Session {
                username,
                token_hash,
                expires_at,
            },
        })
    }

    /// The session of `token` if it exists and has not expired; refreshes
    /// its idle clock.
    pub fn lookup(&self, token: &str) -> Result<Option<Session>, StoreError> {
        let token_hash = hash_token(token);
        let Some(row) = self.store.session(&token_hash)? else {
            return Ok(None);
        };
        let now = now();
        if now >= row.expires_at || now >= row.last_seen + self.idle.as_secs() as i64 {
            self.end(&token_hash)?;
            return Ok(None);
        }
        // One write per minute at most (sooner for short idle limits), not
        // one per request.
        let touch_after = (self.idle.as_secs() as i64 / 4).clamp(1, 60);
        if now - row.last_seen >= touch_after {
            self.store.touch_session(&token_hash, now)?;
        }
        Ok(Some(Session {
            username: row.username,
            token_hash,
            expires_at: row.expires_at,
        }))
    }

    pub fn credential(&self, session: &Session) -> Option<GitCredential> {
        self.credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session.token_hash)
            .cloned()
    }

    /// The credential of the session with `token_hash`, while it lives
    /// (for work done on its behalf later, such as a gateway re-apply).
    pub fn credential_of(&self, token_hash: &str) -> Option<GitCredential> {
        let row = match self.store.session(token_hash) {
            Ok(row) => row?,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read a session");
                return None;
            }
        };
        let now = now();
        if now >= row.expires_at || now >= row.last_seen + self.idle.as_secs() as i64 {
            if let Err(err) = self.end(token_hash) {
                tracing::warn!(error = %err, "cannot end an expired session");
            }
            return None;
        }
        self.credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token_hash)
            .cloned()
    }

    pub fn end(&self, token_hash: &str) -> Result<(), StoreError> {
        self.credentials
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token_hash);
        self.store.delete_session(token_hash)
    }

    /// Drops expired sessions and their credentials.
    pub fn sweep(&self) -> Result<(), StoreError> {
        self.store
            .delete_expired_sessions(now(), self.idle.as_secs() as i64)?;
        let mut credentials = self.credentials.write().unwrap_or_else(|e| e.into_inner());
        let hashes: Vec<String> = credentials.keys().cloned().collect();
        for hash in hashes {
            if self.store.session(&hash)?.is_none() {
                credentials.remove(&hash);
            }
        }
        Ok(())
    }
}
