//! The push payloads Bitbucket sends, read into one [`Push`].
//!
//! - Cloud, `X-Event-Key: repo:push`: `push.changes[].new` is the ref after
//!   the push (`null` when it was deleted): `{type: "branch", name,
//!   target: {hash}}`; the repository is `repository.full_name`
//!   (`workspace/slug`).
//! - Data Center, `X-Event-Key: repo:refs_changed`: `changes[]` of
//!   `{ref: {id: "refs/heads/x", displayId, type: "BRANCH"}, toHash, type:
//!   "ADD" | "UPDATE" | "DELETE"}`; the repository is `repository.slug`.
//!
//! **Repo mapping**: SDP's repo name (the directory in the agents'
//! `repos_dir`, what `GET /api/repos` lists) is the Bitbucket repository's
//! slug: Cloud's `full_name` after the `/` (else `slug`, else `name`
//! lower-cased), Data Center's `slug`. Tags, deleted branches and branch
//! names git would refuse are left out; anything else is ignored.
//! Unknown fields are ignored, so newer payloads still parse.

use sdp_bus::validate;
use serde::Deserialize;

pub const CLOUD_PUSH: &str = "repo:push";
pub const DATA_CENTER_REFS_CHANGED: &str = "repo:refs_changed";

/// A push: the SDP repo and each branch it moved, with its new commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    pub repo: String,
    pub branches: Vec<BranchMove>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchMove {
    pub branch: String,
    pub commit: String,
}

/// What a delivery is to SDP.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Push(Push),
    /// Nothing to do, and why (another event kind, a repository name SDP
    /// cannot have).
    Ignored(String),
}

#[derive(Debug, thiserror::Error)]
#[error("the body is not a Bitbucket {event} payload: {source}")]
pub struct PayloadError {
    event: &'static str,
    #[source]
    source: serde_json::Error,
}

#[derive(Deserialize)]
struct CloudPush {
    repository: CloudRepository,
    push: CloudPushBody,
}

#[derive(Deserialize)]
struct CloudRepository {
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct CloudPushBody {
    changes: Vec<CloudChange>,
}

#[derive(Deserialize)]
struct CloudChange {
    #[serde(default)]
    new: Option<CloudRef>,
}

#[derive(Deserialize)]
struct CloudRef {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    target: CloudTarget,
}

#[derive(Deserialize)]
struct CloudTarget {
    hash: String,
}

#[derive(Deserialize)]
struct DataCenterRefsChanged {
    repository: DataCenterRepository,
    changes: Vec<DataCenterChange>,
}

#[derive(Deserialize)]
struct DataCenterRepository {
    slug: String,
}

#[derive(Deserialize)]
struct DataCenterChange {
    #[serde(rename = "ref")]
    reference: DataCenterRef,
    #[serde(rename = "toHash")]
    to_hash: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct DataCenterRef {
    id: String,
    #[serde(rename = "type")]
    kind: String,
}

/// Reads the body of event `event` (the `X-Event-Key`).
pub fn parse(event: &str, body: &[u8]) -> Result<Delivery, PayloadError> {
    match event {
        CLOUD_PUSH => {
            let push: CloudPush = serde_json::from_slice(body).map_err(|source| PayloadError {
                event: CLOUD_PUSH,
                source,
            })?;
            let repo = cloud_slug(&push.repository);
            let moves = push
                .push
                .changes
                .into_iter()
                .filter_map(|change| change.new)
                .filter(|new| new.kind == "branch")
                .map(|new| (new.name, new.target.hash));
            Ok(delivery(repo, moves))
        }
        DATA_CENTER_REFS_CHANGED => {
            let changed: DataCenterRefsChanged =
                serde_json::from_slice(body).map_err(|source| PayloadError {
                    event: DATA_CENTER_REFS_CHANGED,
                    source,
                })?;
            let moves = changed
                .changes
                .into_iter()
                .filter(|c| c.reference.kind == "BRANCH" && c.kind != "DELETE")
                .filter_map(|c| {
                    let branch = c.reference.id.strip_prefix("refs/heads/")?.to_owned();
                    Some((branch, c.to_hash))
                });
            Ok(delivery(Some(changed.repository.slug), moves))
        }
        other => Ok(Delivery::Ignored(format!(
            "event {other:?} is not a push ({CLOUD_PUSH} or {DATA_CENTER_REFS_CHANGED}): ignored"
        ))),
    }
}

fn cloud_slug(repository: &CloudRepository) -> Option<String> {
    repository
        .full_name
        .as_deref()
        .and_then(|full| full.rsplit('/').next())
        .or(repository.slug.as_deref())
        .map(str::to_owned)
        .or_else(|| repository.name.as_deref().map(str::to_ascii_lowercase))
}

fn delivery(repo: Option<String>, moves: impl Iterator<Item = (String, String)>) -> Delivery {
    let Some(repo) = repo.filter(|r| validate::repo(r).is_ok()) else {
        return Delivery::Ignored(
            "the repository's slug is not a name SDP repos have: ignored".to_owned(),
        );
    };
    let branches = moves
        .filter(|(branch, commit)| validate::branch(branch).is_ok() && is_commit(commit))
        // Lowercase, as git and SDP's commit checks write them.
        .map(|(branch, commit)| BranchMove {
            branch,
            commit: commit.to_ascii_lowercase(),
        })
        .collect();
    Delivery::Push(Push { repo, branches })
}

/// A full commit id: 40 (SHA-1) or 64 (SHA-256) hex digits.
fn is_commit(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    fn moved(branch: &str, commit: &str) -> BranchMove {
        BranchMove {
            branch: branch.into(),
            commit: commit.into(),
        }
    }

    #[test]
    fn cloud_push_gives_the_moved_branches() {
        let body = json!({
            "actor": { "display_name": "Dev" },
            "repository": { "type": "repository", "full_name": "team/users", "name": "Users" },
            "push": { "changes": [
                { "new": { "type": "branch", "name": "feature/x", "target": { "type": "commit", "hash": A } },
                  "old": { "type": "branch", "name": "feature/x", "target": { "hash": B } },
                  "created": false, "closed": false, "truncated": false, "commits": [] },
                { "new": { "type": "tag", "name": "v1", "target": { "hash": A } } },
                { "new": null, "old": { "type": "branch", "name": "gone", "target": { "hash": B } }, "closed": true },
                { "new": { "type": "branch", "name": "-evil", "target": { "hash": A } } },
                { "new": { "type": "branch", "name": "main", "target": { "hash": "not-a-sha" } } },
            ]},
        });
        let delivery = parse(CLOUD_PUSH, body.to_string().as_bytes()).expect("parses");
        assert_eq!(
            delivery,
            Delivery::Push(Push {
                repo: "users".into(),
                branches: vec![moved("feature/x", A)]
            })
        );
    }

    #[test]
    fn data_center_refs_changed_gives_the_moved_branches() {
        let body = json!({
            "eventKey": "repo:refs_changed",
            "date": "2026-11-27T10:00:00+0000",
            "actor": { "name": "dev" },
            "repository": { "slug": "users", "name": "Users", "project": { "key": "TEAM" } },
            "changes": [
                { "ref": { "id": "refs/heads/feature/x", "displayId": "feature/x", "type": "BRANCH" },
                  "refId": "refs/heads/feature/x", "fromHash": B, "toHash": A, "type": "UPDATE" },
                { "ref": { "id": "refs/heads/new", "displayId": "new", "type": "BRANCH" },
                  "fromHash": "0000000000000000000000000000000000000000", "toHash": B, "type": "ADD" },
                { "ref": { "id": "refs/heads/old", "displayId": "old", "type": "BRANCH" },
                  "fromHash": B, "toHash": "0000000000000000000000000000000000000000", "type": "DELETE" },
                { "ref": { "id": "refs/tags/v1", "displayId": "v1", "type": "TAG" }, "toHash": A, "type": "ADD" },
            ],
        });
        let delivery =
            parse(DATA_CENTER_REFS_CHANGED, body.to_string().as_bytes()).expect("parses");
        assert_eq!(
            delivery,
            Delivery::Push(Push {
                repo: "users".into(),
                branches: vec![moved("feature/x", A), moved("new", B)]
            })
        );
    }

    #[test]
    fn other_events_and_foreign_names_are_ignored_and_bad_bodies_refused() {
        assert!(matches!(
            parse("pullrequest:created", b"{}"),
            Ok(Delivery::Ignored(_))
        ));
        assert!(matches!(
            parse("diagnostics:ping", b"not json"),
            Ok(Delivery::Ignored(_))
        ));
        let foreign = json!({ "repository": { "slug": "Not A Slug" }, "changes": [] });
        assert!(matches!(
            parse(DATA_CENTER_REFS_CHANGED, foreign.to_string().as_bytes()),
            Ok(Delivery::Ignored(_))
        ));
        for bad in [&b"[]"[..], b"{}", b"{\"push\": 1}", b"\xff"] {
            assert!(parse(CLOUD_PUSH, bad).is_err());
            assert!(parse(DATA_CENTER_REFS_CHANGED, bad).is_err());
        }
    }
}
