//! [`GoFixture`]: a stdlib-only Go HTTP service committed to a bare repo on
//! a [`GitServer`], one single-commit branch per requested branch name.

use std::fs;
use std::path::Path;
use std::sync::Mutex;

use tempfile::TempDir;

use crate::cmd::{git, run};
use crate::git_server::GitServer;

/// The revision every branch starts with.
pub const INITIAL_REVISION: &str = "1";

/// A Go service repo on the git server plus the temp work clone it is
/// edited and pushed from (pushes go to the bare repo's file path).
#[derive(Debug)]
pub struct GoFixture {
    repo: String,
    bare: std::path::PathBuf,
    work: TempDir,
    // Serialises git commands in the work clone.
    lock: Mutex<()>,
}

impl GoFixture {
    /// Creates bare repo `repo` on `git` and pushes one commit per branch
    /// (each with go.mod, main.go and README.md, revision `"1"`). The first
    /// branch is the default one (`HEAD`).
    ///
    /// # Panics
    /// If `branches` is empty or a git command fails.
    pub fn create(git_server: &GitServer, repo: &str, branches: &[&str]) -> GoFixture {
        let Some(default_branch) = branches.first() else {
            panic!("GoFixture::create({repo:?}) needs at least one branch");
        };
        let bare = git_server.create_bare(repo);
        let work = tempfile::Builder::new()
            .prefix("sdp-gofix-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create work dir: {e}"));
        run(git(Some(work.path())).args(["init", "--quiet"]));
        let fixture = GoFixture {
            repo: repo.to_owned(),
            bare,
            work,
            lock: Mutex::new(()),
        };
        for branch in branches {
            // Point HEAD at the unborn branch: its first commit has no parent.
            // Every branch has the same three files, all rewritten below.
            run(fixture
                .git()
                .args(["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")]));
            fixture.write_tree(branch, &go_main_source(repo, branch, INITIAL_REVISION));
            fixture.commit_and_push(branch, &format!("{repo}: {branch} revision 1"));
        }
        run(git(Some(&fixture.bare)).args([
            "symbolic-ref",
            "HEAD",
            &format!("refs/heads/{default_branch}"),
        ]));
        fixture
    }

    /// Sets the revision const on `branch` to `revision`, commits, pushes;
    /// returns the new commit sha.
    pub fn push_revision(&self, branch: &str, revision: &str) -> String {
        let main = go_main_source(&self.repo, branch, revision);
        self.push_main(
            branch,
            &main,
            &format!("{}: {branch} revision {revision}", self.repo),
        )
    }

    /// Pushes a commit whose main.go does not compile; returns its sha.
    pub fn push_broken(&self, branch: &str) -> String {
        let main = format!(
            "package main\n\n// Deliberately broken by sdp-testkit.\nfunc main() {{\n\tthis does not compile\n}}\n// {}\n",
            crate::util::unique_id("broken")
        );
        self.push_main(
            branch,
            &main,
            &format!("{}: {branch} broken build", self.repo),
        )
    }

    /// Replaces `branch`'s service with [`crashing_service_source`]: it
    /// prints `message` to stderr and exits with `code` at start. Returns
    /// the sha.
    pub fn push_crashing(&self, branch: &str, message: &str, code: u8) -> String {
        let main = crashing_service_source(message, code);
        self.push_main(branch, &main, &format!("{}: {branch} crashes", self.repo))
    }

    /// Replaces `branch`'s service with [`unhealthy_service_source`]: it
    /// prints `line` and listens, but answers every path with 500. Returns
    /// the sha.
    pub fn push_unhealthy(&self, branch: &str, line: &str) -> String {
        let main = unhealthy_service_source(line);
        self.push_main(
            branch,
            &main,
            &format!("{}: {branch} never healthy", self.repo),
        )
    }

    /// Adds a large generated Go file to `branch`, so that compiling it
    /// takes several seconds (for tests that act mid-build); returns the sha.
    pub fn push_slow_build(&self, branch: &str) -> String {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        run(self.git().args(["checkout", "--quiet", branch]));
        let mut source = String::from("package main\n\n");
        for i in 0..40_000 {
            source.push_str(&format!(
                "func slow{i}(x int) int {{ if x > {i} {{ return x * {i} + slow{}(x-1) }}; return x }}\n",
                i.max(1) - 1
            ));
        }
        // A fresh comment, so each call compiles anew (no build cache hit).
        source.push_str(&format!("// {}\n", crate::util::unique_id("slow")));
        write(&self.work.path().join("slow.go"), &source);
        self.commit_and_push(branch, &format!("{}: {branch} slow build", self.repo))
    }

    /// Adds `spew.go` to `branch`: from its start the service also prints
    /// `lines_per_sec` numbered lines a second (`spew <n> <ANSI green> …`,
    /// 100 bytes each), for tests of a loud container; returns the sha.
    pub fn push_spew(&self, branch: &str, lines_per_sec: u32) -> String {
        let per_tick = (lines_per_sec / 100).max(1);
        let source = format!(
            r#"package main

import (
	"bufio"
	"fmt"
	"os"
	"time"
)

// Prints {per_tick} lines every 10 ms; generated by sdp-testkit.
func init() {{
	go func() {{
		w := bufio.NewWriterSize(os.Stdout, 256*1024)
		tick := time.NewTicker(10 * time.Millisecond)
		n := 0
		for range tick.C {{
			for i := 0; i < {per_tick}; i++ {{
				n++
				fmt.Fprintf(w, "spew %09d \x1b[32mgreen\x1b[0m %s\n", n, "................................................................")
			}}
			w.Flush()
		}}
	}}()
}}
"#
        );
        self.push_file(branch, "spew.go", &source)
    }

    /// Writes `path` (relative to the repo root, e.g. `sdp.toml` or
    /// `cmd/users/main.go`) on `branch`, commits, pushes; returns the sha.
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

    /// Moves the service's `main.go` to `<dir>/main.go` on `branch` (for
    /// `main_package` in `sdp.toml`), commits, pushes; returns the sha.
    pub fn move_main(&self, branch: &str, dir: &str) -> String {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        run(self.git().args(["checkout", "--quiet", branch]));
        let target = self.work.path().join(dir);
        fs::create_dir_all(&target)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", target.display()));
        run(self
            .git()
            .args(["mv", "main.go"])
            .arg(format!("{dir}/main.go")));
        self.commit_and_push(branch, &format!("{}: {branch} main in {dir}", self.repo))
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

    /// The repo name (as given to [`create`](Self::create)).
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// The bare repo on disk.
    pub fn bare_path(&self) -> &Path {
        &self.bare
    }

    /// The work clone (its checkout is whichever branch was pushed last).
    pub fn work_path(&self) -> &Path {
        self.work.path()
    }

    fn push_main(&self, branch: &str, main_go: &str, message: &str) -> String {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        run(self.git().args(["checkout", "--quiet", branch]));
        write(&self.work.path().join("main.go"), main_go);
        self.commit_and_push(branch, message)
    }

    fn write_tree(&self, branch: &str, main_go: &str) {
        let dir = self.work.path();
        write(
            &dir.join("go.mod"),
            &format!("module example.com/{}\n\ngo 1.19\n", self.repo),
        );
        write(&dir.join("main.go"), main_go);
        write(
            &dir.join("README.md"),
            &format!(
                "# {}\n\nTest fixture service (branch `{branch}`) made by sdp-testkit.\n\
                 GET /healthz answers `ok`; any other path answers JSON.\n",
                self.repo
            ),
        );
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

/// The fixture's main.go: listens on `:$PORT` (default 8080), prints
/// `listening on :PORT`, answers `GET /healthz` with `ok` and any other path
/// with JSON `{service, branch, revision, commit: $SDP_COMMIT, path}`,
/// printing `request <METHOD> <path>` for each such request.
pub fn go_main_source(repo: &str, branch: &str, revision: &str) -> String {
    let (service, branch, revision) = (go_quote(repo), go_quote(branch), go_quote(revision));
    format!(
        r#"// Test fixture service generated by sdp-testkit. Standard library only.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
)

const (
	service  = {service}
	branch   = {branch}
	revision = {revision}
)

func main() {{
	port := os.Getenv("PORT")
	if port == "" {{
		port = "8080"
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {{
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "ok")
	}})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {{
		// One line per request (not health checks): what runtime-log tests follow.
		fmt.Printf("request %s %s\n", r.Method, r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{{
			"service":  service,
			"branch":   branch,
			"revision": revision,
			"commit":   os.Getenv("SDP_COMMIT"),
			"path":     r.URL.Path,
		}})
	}})
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {{
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}}
	fmt.Printf("listening on :%s\n", port)
	if err := http.Serve(ln, mux); err != nil {{
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}}
}}
"#
    )
}

/// A main.go that prints `starting` on stdout, `message` on stderr, and
/// exits with `code`: a service that dies before its health check.
pub fn crashing_service_source(message: &str, code: u8) -> String {
    let message = go_quote(message);
    format!(
        r#"// Test fixture service generated by sdp-testkit: it crashes at start.
package main

import (
	"fmt"
	"os"
)

func main() {{
	fmt.Println("starting")
	fmt.Fprintln(os.Stderr, {message})
	os.Exit({code})
}}
"#
    )
}

/// A main.go that prints `line` on stdout, listens on `:$PORT` and answers
/// every path (its health path too) with 500: a service that never
/// becomes healthy.
pub fn unhealthy_service_source(line: &str) -> String {
    let line = go_quote(line);
    format!(
        r#"// Test fixture service generated by sdp-testkit: never healthy.
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {{
	port := os.Getenv("PORT")
	if port == "" {{
		port = "8080"
	}}
	fmt.Println({line})
	err := http.ListenAndServe(":"+port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {{
		http.Error(w, "not ready", http.StatusInternalServerError)
	}}))
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}}
"#
    )
}

/// A Go interpreted string literal for `s`.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
