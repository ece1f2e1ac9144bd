//! Checks on user input, run by the control plane before a request is sent
//! and again by the agent before git or Docker sees it.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidName {
    pub what: &'static str,
    pub rule: &'static str,
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.what, self.rule)
    }
}

fn invalid(what: &'static str, rule: &'static str) -> InvalidName {
    InvalidName { what, rule }
}

/// A branch name by git's ref-format rules (`git check-ref-format`), plus:
/// no leading `-` (it would read as an option) and at most 200 bytes.
pub fn branch(name: &str) -> Result<(), InvalidName> {
    const WHAT: &str = "branch name";
    if name.is_empty() {
        return Err(invalid(WHAT, "it is empty"));
    }
    if name.len() > 200 {
        return Err(invalid(WHAT, "it is longer than 200 characters"));
    }
    if name.starts_with('-') {
        return Err(invalid(WHAT, "it starts with '-'"));
    }
    if name == "@" || name == "HEAD" {
        return Err(invalid(WHAT, "it is a reserved name"));
    }
    if name.contains("..") {
        return Err(invalid(WHAT, "it contains '..'"));
    }
    if name.contains("@{") {
        return Err(invalid(WHAT, "it contains '@{'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Err(if c.is_control() {
            invalid(WHAT, "it contains a control character")
        } else {
            invalid(WHAT, "it contains one of space ~ ^ : ? * [ \\")
        });
    }
    if name.ends_with('.') {
        return Err(invalid(WHAT, "it ends with '.'"));
    }
    for component in name.split('/') {
        if component.is_empty() {
            return Err(invalid(WHAT, "it has an empty path component"));
        }
        if component.starts_with('.') {
            return Err(invalid(WHAT, "a path component starts with '.'"));
        }
        if component.ends_with(".lock") {
            return Err(invalid(WHAT, "a path component ends with '.lock'"));
        }
    }
    Ok(())
}

/// A repo name: `^[a-z0-9][a-z0-9._-]{0,62}$`, and not `..`-like, so it
/// resolves only to a direct child of `repos_dir`.
pub fn repo(name: &str) -> Result<(), InvalidName> {
    const WHAT: &str = "repo name";
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !first_ok
        || name.len() > 63
        || !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(invalid(
            WHAT,
            "use 1-63 of a-z 0-9 . _ - starting with a letter or digit",
        ));
    }
    if name.contains("..") {
        return Err(invalid(WHAT, "it contains '..'"));
    }
    Ok(())
}

/// A sandbox, environment or template name: `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn resource_name(what: &'static str, name: &str) -> Result<(), InvalidName> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !first_ok
        || name.len() > 63
        || !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            what,
            "use 1-63 of a-z 0-9 - starting with a letter or digit",
        ));
    }
    Ok(())
}

/// A server-made id (agent id, kind, deployment or stream id): one subject
/// token, 1-64 of `[A-Za-z0-9_-]`, so it is also safe as a file or
/// container name (no `/`, no `.`).
pub fn token(what: &'static str, s: &str) -> Result<(), InvalidName> {
    if !crate::subject::is_token(s) {
        return Err(invalid(what, "use 1-64 of A-Z a-z 0-9 _ -"));
    }
    Ok(())
}

/// A full commit id: 40 lowercase hex digits (SHA-1), or 64 (a SHA-256
/// repository). Abbreviations are refused: only the agent could resolve
/// them, and only against what it has fetched.
pub fn commit(id: &str) -> Result<(), InvalidName> {
    if !matches!(id.len(), 40 | 64)
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid(
            "commit",
            "use the full commit id: 40 (or 64) lowercase hex digits",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits() {
        assert!(commit(&"a1".repeat(20)).is_ok());
        assert!(commit(&"0f".repeat(32)).is_ok());
        for bad in [
            "",
            "abc1234",
            &"A1".repeat(20),
            &"g1".repeat(20),
            &"a".repeat(41),
            &"a".repeat(39),
            "--upload-pack=touch /tmp/x-----------------",
        ] {
            assert!(commit(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn accepts_ordinary_branches() {
        for ok in ["main", "feature/x", "release-1.2", "user/jo/fix_42", "a@b"] {
            assert_eq!(branch(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_hostile_branches() {
        let long = "a".repeat(300);
        for bad in [
            "",
            "--upload-pack=touch /tmp/pwned",
            "-x",
            "../x",
            "a/../b",
            "a..b",
            "x@{1}",
            "x.lock",
            "a/b.lock/c",
            ".hidden",
            "a/.b",
            "a//b",
            "/a",
            "a/",
            "a.",
            "a b",
            "a\nb",
            "a\u{7f}",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "@",
            "HEAD",
            long.as_str(),
        ] {
            assert!(branch(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn tokens() {
        for ok in ["d0190a1b2c3d", "agent-1", "micro", "A_b-9"] {
            assert_eq!(token("id", ok), Ok(()), "{ok}");
        }
        for bad in ["", "../x", "a.b", "a/b", "a b", "é", &"a".repeat(65)] {
            assert!(token("id", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn repo_names() {
        for ok in ["users", "api-gateway", "svc.v2", "a_b", "0"] {
            assert_eq!(repo(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "..",
            ".git",
            "-x",
            "A",
            "a/b",
            "a..b",
            "ü",
            &"a".repeat(64),
        ] {
            assert!(repo(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn resource_names() {
        assert!(resource_name("sandbox", "alpha-1").is_ok());
        for bad in [
            "",
            "../x",
            "a.b*",
            "Alpha",
            "-a",
            "a'; drop table x;--",
            "é",
            &"a".repeat(200),
        ] {
            assert!(
                resource_name("sandbox", bad).is_err(),
                "{bad:?} was accepted"
            );
        }
    }
}
