//! Session rows. Only the SHA-256 of a token is stored, so a copy of the
//! database opens no session.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

#[derive(Clone, Debug)]
pub struct SessionRow {
    pub username: String,
    pub created_at: i64,
    pub last_seen: i64,
    pub expires_at: i64,
}

impl Store {
    pub fn insert_session(&self, token_hash: &str, row: &SessionRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO sessions (token_hash, username, created_at, last_seen, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                token_hash,
                row.username,
                row.created_at,
                row.last_seen,
                row.expires_at
            ],
        )?;
        Ok(())
    }

    pub fn session(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        Ok(self
            .read()
            .query_row(
                "SELECT username, created_at, last_seen, expires_at FROM sessions WHERE token_hash = ?1",
                [token_hash],
                |row| {
                    Ok(SessionRow {
                        username: row.get(0)?,
                        created_at: row.get(1)?,
                        last_seen: row.get(2)?,
                        expires_at: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn touch_session(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE sessions SET last_seen = ?2 WHERE token_hash = ?1",
            params![token_hash, now],
        )?;
        Ok(())
    }

    pub fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
        Ok(())
    }

    /// Removes sessions past their absolute or idle expiry.
    pub fn delete_expired_sessions(&self, now: i64, idle_secs: i64) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen + ?2 <= ?1",
            params![now, idle_secs],
        )?)
    }
}
