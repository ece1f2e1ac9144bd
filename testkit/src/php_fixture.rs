//! [`PhpGatewayFixture`]: a plain-PHP API gateway (router script for
//! `php -S`) committed to a bare repo on a [`GitServer`], one branch per
//! requested name.

use std::fs;
use std::path::Path;
use std::sync::Mutex;

use tempfile::TempDir;

use crate::cmd::{git, run};
use crate::git_server::GitServer;

/// The revision every branch starts with.
pub const INITIAL_REVISION: &str = "1";

/// `composer.json` of the fixture: a name, no dependencies.
pub const GATEWAY_COMPOSER_JSON: &str = "{\n    \"name\": \"sdp/gateway-fixture\",\n    \"description\": \"Test fixture API gateway made by sdp-testkit\",\n    \"type\": \"project\",\n    \"require\": {}\n}\n";

/// A PHP gateway repo on the git server plus the temp work clone it is
/// edited and pushed from.
#[derive(Debug)]
pub struct PhpGatewayFixture {
    repo: String,
    bare: std::path::PathBuf,
    work: TempDir,
    lock: Mutex<()>,
}

impl PhpGatewayFixture {
    /// Creates bare repo `repo` on `git_server` and pushes one commit per
    /// branch (composer.json, index.php with revision `"1"`, README.md).
    /// The first branch is the default one (`HEAD`).
    ///
    /// # Panics
    /// If `branches` is empty or a git command fails.
    pub fn create(git_server: &GitServer, repo: &str, branches: &[&str]) -> PhpGatewayFixture {
        let Some(default_branch) = branches.first() else {
            panic!("PhpGatewayFixture::create({repo:?}) needs at least one branch");
        };
        let bare = git_server.create_bare(repo);
        let work = tempfile::Builder::new()
            .prefix("sdp-phpfix-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create work dir: {e}"));
        run(git(Some(work.path())).args(["init", "--quiet"]));
        let fixture = PhpGatewayFixture {
            repo: repo.to_owned(),
            bare,
            work,
            lock: Mutex::new(()),
        };
        for branch in branches {
            run(fixture
                .git()
                .args(["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")]));
            // An unborn branch starts from an empty index.
            let _ = crate::cmd::output(fixture.git().args(["rm", "-r", "-q", "--cached", "."]));
            let dir = fixture.work.path();
            write(&dir.join("composer.json"), GATEWAY_COMPOSER_JSON);
            write(
                &dir.join("index.php"),
                &php_gateway_source(INITIAL_REVISION),
            );
            write(
                &dir.join("README.md"),
                &format!(
                    "# {repo}\n\nTest fixture API gateway (branch `{branch}`) made by sdp-testkit.\n\
                     Run with `php -S 0.0.0.0:8080 index.php`.\n"
                ),
            );
            fixture.commit_and_push(branch, &format!("{repo}: {branch} revision 1"));
        }
        run(git(Some(&fixture.bare)).args([
            "symbolic-ref",
            "HEAD",
            &format!("refs/heads/{default_branch}"),
        ]));
        fixture
    }

    /// Sets the revision in index.php on `branch`, commits, pushes; returns
    /// the new commit sha.
    pub fn push_revision(&self, branch: &str, revision: &str) -> String {
        self.push_file(branch, "index.php", &php_gateway_source(revision))
    }

    /// Writes `path` (relative to the repo root) on `branch`, commits,
    /// pushes; returns the new commit sha.
    pub fn push_file(&self, branch: &str, path: &str, contents: &str) -> String {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        run(self.git().args(["checkout", "--quiet", branch]));
        let target = self.work.path().join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        write(&target, contents);
        self.commit_and_push(branch, &format!("{}: {branch} update {path}", self.repo))
    }

    /// Deletes `path` on `branch`, commits, pushes; returns the new sha.
    pub fn remove_file(&self, branch: &str, path: &str) -> String {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        run(self.git().args(["checkout", "--quiet", branch]));
        run(self.git().args(["rm", "-q", "--", path]));
        self.commit_and_push(branch, &format!("{}: {branch} remove {path}", self.repo))
    }

    /// Commits a symlink `path` → `target` (any text, e.g. a host path
    /// outside the repo) on `branch`, pushes; returns the new sha.
    pub fn push_symlink(&self, branch: &str, path: &str, target: &str) -> String {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        run(self.git().args(["checkout", "--quiet", branch]));
        let link = self.work.path().join(path);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link)
            .unwrap_or_else(|e| panic!("cannot link {}: {e}", link.display()));
        self.commit_and_push(branch, &format!("{}: {branch} link {path}", self.repo))
    }

    /// The sha at the tip of `branch` in the bare repo.
    pub fn commit(&self, branch: &str) -> String {
        run(git(Some(&self.bare)).args(["rev-parse", &format!("refs/heads/{branch}^{{commit}}")]))
    }

    pub fn repo(&self) -> &str {
        &self.repo
    }

    pub fn bare_path(&self) -> &Path {
        &self.bare
    }

    fn commit_and_push(&self, branch: &str, message: &str) -> String {
        run(self.git().args(["add", "-A"]));
        run(self
            .git()
            .args(["commit", "--quiet", "--allow-empty", "-m", message]));
        let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
        run(self
            .git()
            .arg("push")
            .arg("--quiet")
            .arg(&self.bare)
            .arg(refspec));
        run(self.git().args(["rev-parse", "HEAD"]))
    }

    fn git(&self) -> std::process::Command {
        git(Some(self.work.path()))
    }
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// The fixture's index.php, a router script for `php -S`:
/// - `GET /healthz` → `ok`;
/// - `GET /routes` → the file `$SDP_ROUTES_FILE` as is;
/// - `GET /users/...` → forwarded (GET) to `getenv('USERS_URL') . path`,
///   `/orders/...` to `getenv('ORDERS_URL') . path`; the answer (with the
///   upstream's status) is JSON `{gateway: {sandbox, revision},
///   upstream_env, target, status, body}` where `body` is the upstream's
///   decoded JSON or its raw text; 502 JSON with `error` if the upstream
///   cannot be reached or its env var is unset;
/// - anything else → 404 JSON.
///
/// Needs only PHP's core (json, pcre, streams with `allow_url_fopen`).
pub fn php_gateway_source(revision: &str) -> String {
    let revision = php_quote(revision);
    format!(
        r#"<?php
// Test fixture API gateway generated by sdp-testkit: a router script for
// `php -S`. Plain PHP, no extensions beyond the core.

const REVISION = {revision};
const UPSTREAMS = ['users' => 'USERS_URL', 'orders' => 'ORDERS_URL'];

function sdp_gateway(): array
{{
    $sandbox = getenv('SDP_SANDBOX');
    return ['sandbox' => $sandbox === false ? null : $sandbox, 'revision' => REVISION];
}}

function sdp_json(int $status, array $body): bool
{{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($body, JSON_UNESCAPED_SLASHES), "\n";
    return true;
}}

$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);
if (!is_string($path) || $path === '') {{
    $path = '/';
}}

if ($path === '/healthz') {{
    header('Content-Type: text/plain');
    echo 'ok';
    return true;
}}

if ($path === '/routes') {{
    $file = getenv('SDP_ROUTES_FILE');
    $text = (is_string($file) && $file !== '') ? @file_get_contents($file) : false;
    if ($text === false) {{
        return sdp_json(500, ['gateway' => sdp_gateway(), 'error' => 'cannot read $SDP_ROUTES_FILE']);
    }}
    header('Content-Type: application/json');
    echo $text;
    return true;
}}

$segments = explode('/', ltrim($path, '/'), 2);
$service = $segments[0];
if (!isset(UPSTREAMS[$service])) {{
    return sdp_json(404, ['gateway' => sdp_gateway(), 'error' => 'no route for ' . $path]);
}}
$key = UPSTREAMS[$service];
$base = getenv($key);
if (!is_string($base) || $base === '') {{
    return sdp_json(502, ['gateway' => sdp_gateway(), 'upstream_env' => $key, 'error' => $key . ' is not set']);
}}
$target = rtrim($base, '/') . $path;
$context = stream_context_create(['http' => [
    'method' => 'GET',
    'ignore_errors' => true,
    'timeout' => 10,
    'header' => "Accept: application/json\r\n",
]]);
$raw = @file_get_contents($target, false, $context);
if ($raw === false) {{
    $last = error_get_last();
    return sdp_json(502, [
        'gateway' => sdp_gateway(),
        'upstream_env' => $key,
        'target' => $target,
        'error' => $last['message'] ?? 'the upstream request failed',
    ]);
}}
$status = 0;
foreach ($http_response_header ?? [] as $line) {{
    if (preg_match('#^HTTP/\S+\s+(\d{{3}})#', $line, $m)) {{
        $status = (int) $m[1];
    }}
}}
$body = json_decode($raw, true);
if ($body === null && json_last_error() !== JSON_ERROR_NONE) {{
    $body = $raw;
}}
return sdp_json($status > 0 ? $status : 200, [
    'gateway' => sdp_gateway(),
    'upstream_env' => $key,
    'target' => $target,
    'status' => $status,
    'body' => $body,
]);
"#
    )
}

/// A single-quoted PHP string literal for `s`.
fn php_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}
