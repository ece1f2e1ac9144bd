//! `REPO[@BRANCH]`: what `sdp deploy` is told to deploy. Both halves are
//! checked with the same rules the control plane applies
//! (`sdp_bus::validate`), so a typo fails before anything is sent.

use std::fmt;

use sdp_bus::validate;

/// One service to deploy: a repo, and a branch unless the sandbox's
/// current one is meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub repo: String,
    pub branch: Option<String>,
}

impl Target {
    /// Parses `users`, `users@main` or `users@feature/x`. The repo ends at
    /// the first `@` (repo names cannot hold one; branches may).
    pub fn parse(text: &str) -> Result<Target, String> {
        let (repo, branch) = match text.split_once('@') {
            Some((repo, branch)) => (repo, Some(branch)),
            None => (text, None),
        };
        validate::repo(repo).map_err(|e| format!("{text:?}: {e}"))?;
        if let Some(branch) = branch {
            validate::branch(branch).map_err(|e| format!("{text:?}: {e}"))?;
        }
        Ok(Target {
            repo: repo.to_owned(),
            branch: branch.map(str::to_owned),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.branch {
            Some(branch) => write!(f, "{}@{branch}", self.repo),
            None => f.write_str(&self.repo),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_and_branch() {
        assert_eq!(
            Target::parse("users@feature/x"),
            Ok(Target {
                repo: "users".into(),
                branch: Some("feature/x".into())
            })
        );
    }

    #[test]
    fn repo_alone() {
        assert_eq!(
            Target::parse("order-api"),
            Ok(Target {
                repo: "order-api".into(),
                branch: None
            })
        );
    }

    #[test]
    fn the_first_at_ends_the_repo() {
        let target = Target::parse("users@fix@home").expect("valid");
        assert_eq!(target.repo, "users");
        assert_eq!(target.branch.as_deref(), Some("fix@home"));
        assert_eq!(target.to_string(), "users@fix@home");
    }

    #[test]
    fn bad_input_is_refused() {
        for bad in [
            "",
            "@main",
            "users@",
            "Users@main",
            "../etc@main",
            "users@-rf",
            "users@a..b",
            "users@a b",
            "users@feature/",
            "users@x.lock",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
