//! git bench: SDP's fetching phase (agentlib's git2 fetch into the
//! repo's shared store + checkout, as the agent runs it) against the git CLI
//! on a generated repository served by testkit's git smart-HTTP server with
//! basic auth:
//! - cold: `git clone --single-branch` vs a first fetch on an empty agent;
//! - incremental (5 new commits): `git fetch` + checkout vs SDP's redeploy;
//! - a new sandbox of an already-fetched repo: SDP vs `git worktree add`,
//!   and against SDP's own cold fetch (target <= 10 %).
//!
//! Size: `SDP_BENCH_GIT_COMMITS` (default 100000) and `SDP_BENCH_GIT_FILES`
//! (default 20000). The repo is generated once with `git fast-import` and
//! kept under `target/tmp/bench-git/`; the served copy borrows its objects
//! (`clone --shared`), so new commits never touch the cache.
//!
//! Run: `scripts/bench.sh` (or `cargo bench -p sdp-control-plane --bench git_fetch`).

#[path = "support/mod.rs"]
mod support;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use sdp_agentlib::git::{self, FetchSpec, Fetched};
use sdp_bus::{GitCredential, Secret};
use sdp_testkit::GitServer;

const USER: &str = "bench";
const PASSWORD: &str = "bench-Pw-31c7";
const REPO: &str = "big";
/// Files rewritten by the history's commits (small, so history is cheap).
const LOG_FILES: usize = 100;

/// A deterministic xorshift: content that compresses like source code does
/// not, so the pack has a realistic size.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `len` bytes of base64-alphabet text in lines of 64.
    fn text(&mut self, len: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::with_capacity(len + len / 64);
        for i in 0..len {
            out.push(ALPHABET[(self.next() % 64) as usize]);
            if i % 64 == 63 {
                out.push(b'\n');
            }
        }
        out
    }
}

fn inline_file(out: &mut dyn Write, path: &str, data: &[u8]) -> std::io::Result<()> {
    writeln!(out, "M 100644 inline {path}\ndata {}", data.len())?;
    out.write_all(data)?;
    writeln!(out)
}

fn commit_header(out: &mut dyn Write, n: usize, message: &str) -> std::io::Result<()> {
    let when = 1_700_000_000 + n as u64 * 60;
    writeln!(
        out,
        "commit refs/heads/main\ncommitter Bench <bench@example.com> {when} +0000\ndata {}\n{message}",
        message.len()
    )
}

/// Feeds `git fast-import` in `repo` with what `write` produces.
fn fast_import(repo: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) {
    let mut child = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["fast-import", "--quiet", "--done"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import");
    {
        let mut stdin = BufWriter::with_capacity(1 << 20, child.stdin.take().expect("stdin"));
        write(&mut stdin).expect("write the fast-import stream");
        writeln!(stdin, "done").expect("done");
        stdin.flush().expect("flush");
    }
    assert!(child.wait().expect("fast-import ends").success());
}

/// The cached bare repo: `files` files in one commit, then `commits - 1`
/// commits each rewriting one small file.
fn generated_repo(commits: usize, files: usize) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-git");
    let repo = dir.join(format!("big-{commits}-{files}.git"));
    if repo.join("sdp-bench-complete").is_file() {
        return repo;
    }
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let started = Instant::now();
    support::run(
        Command::new("git")
            .args(["init", "--quiet", "--bare"])
            .arg(&repo),
    );
    fast_import(&repo, |out| {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        commit_header(out, 0, "initial tree")?;
        for i in 0..files {
            let len = 1500 + (rng.next() % 2000) as usize;
            inline_file(
                out,
                &format!("src/d{:03}/f{i:05}.go", i / 100),
                &rng.text(len),
            )?;
        }
        for n in 1..commits {
            commit_header(out, n, &format!("change {n}"))?;
            let text = format!("change {n}\n{:016x}\n", rng.next());
            inline_file(
                out,
                &format!("log/l{:03}.txt", n % LOG_FILES),
                text.as_bytes(),
            )?;
        }
        Ok(())
    });
    support::run(Command::new("git").arg("--git-dir").arg(&repo).args([
        "symbolic-ref",
        "HEAD",
        "refs/heads/main",
    ]));
    std::fs::write(repo.join("sdp-bench-complete"), b"").expect("marker");
    eprintln!(
        "generated {} in {:.1} s",
        repo.display(),
        started.elapsed().as_secs_f64()
    );
    repo
}

/// Adds `count` commits to the served repo's `main`.
fn push_commits(served: &Path, count: usize, round: usize) {
    fast_import(served, |out| {
        for n in 0..count {
            let message = format!("new {round}.{n}");
            commit_header(out, 10_000_000 + round * 100 + n, &message)?;
            if n == 0 {
                writeln!(out, "from refs/heads/main^0")?;
            }
            inline_file(out, &format!("log/new{n}.txt"), message.as_bytes())?;
        }
        Ok(())
    });
}

struct Sdp {
    url: String,
    credential: GitCredential,
    data: PathBuf,
}

impl Sdp {
    /// Fetch + checkout into `sandbox`, as the agent's fetching phase does.
    fn fetch(&self, sandbox: &str) -> (Duration, Fetched) {
        let (progress, _lines) = tokio::sync::mpsc::unbounded_channel();
        let spec = FetchSpec {
            repo: REPO,
            url: &self.url,
            branch: "main",
            credential: &self.credential,
            worktree: self.data.join("worktrees").join(sandbox).join(REPO),
            gitdir: self.data.join("gitdirs").join(sandbox).join("big.git"),
            store: sdp_agentlib::git_store::path(&self.data, REPO),
            cancel: Arc::new(AtomicBool::new(false)),
            progress,
        };
        let started = Instant::now();
        let fetched = git::fetch_and_checkout(&spec).expect("SDP fetch");
        (started.elapsed(), fetched)
    }
}

fn timed(command: &mut Command) -> Duration {
    let started = Instant::now();
    support::run(command);
    started.elapsed()
}

fn git_cli(auth: &str) -> Command {
    let mut command = Command::new("git");
    command
        .arg("-c")
        .arg(format!("http.extraHeader=Authorization: {auth}"));
    command
}

fn main() {
    let commits = support::env_or("SDP_BENCH_GIT_COMMITS", 100_000);
    let files = support::env_or("SDP_BENCH_GIT_FILES", 20_000);
    let cached = generated_repo(commits, files);
    let git = GitServer::start(USER, PASSWORD);
    let served = git.bare_path(REPO);
    support::run(
        Command::new("git")
            .args(["clone", "--quiet", "--bare", "--shared"])
            .arg(&cached)
            .arg(&served),
    );
    let pack_mib = dir_size(&cached.join("objects")) as f64 / (1024.0 * 1024.0);
    let work = tempfile::TempDir::new().expect("work dir");
    let auth = sdp_testkit::basic_auth_header(USER, PASSWORD);
    let sdp = Sdp {
        url: git.url(REPO),
        credential: GitCredential {
            username: USER.into(),
            password: Secret::new(PASSWORD),
        },
        data: work.path().join("agent"),
    };

    // Cold: SDP first, so any warming of the server's page cache favours
    // the CLI.
    let (sdp_cold, cold_fetch) = sdp.fetch("alpha");
    let clone = work.path().join("clone");
    let cli_cold = timed(
        git_cli(&auth)
            .args([
                "clone",
                "--quiet",
                "--single-branch",
                "--branch",
                "main",
                "--no-tags",
            ])
            .arg(git.url(REPO))
            .arg(&clone),
    );

    // Incremental: a few new commits.
    push_commits(&served, 5, 0);
    let (sdp_incr, _) = sdp.fetch("alpha");
    let started = Instant::now();
    support::run(
        git_cli(&auth)
            .arg("-C")
            .arg(&clone)
            .args(["fetch", "--quiet", "origin", "main"]),
    );
    support::run(Command::new("git").arg("-C").arg(&clone).args([
        "checkout",
        "--quiet",
        "--force",
        "--detach",
        "FETCH_HEAD",
    ]));
    let cli_incr = started.elapsed();

    // A new sandbox of the known repo.
    let (sdp_new, new_fetch) = sdp.fetch("beta");
    let cli_new = timed(
        Command::new("git")
            .arg("-C")
            .arg(&clone)
            .args(["worktree", "add", "--quiet", "--detach"])
            .arg(work.path().join("beta"))
            .arg("HEAD"),
    );

    let secs = |d: Duration| d.as_secs_f64();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "\n| git fetch + checkout, {commits} commits, {files} files ({pack_mib:.0} MiB of objects) | SDP (git2) | git CLI | SDP / CLI | target |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| cold (`clone --single-branch`) | {:.2} s | {:.2} s | {:.2} | <= 1.50 |",
        secs(sdp_cold),
        secs(cli_cold),
        ratio(sdp_cold, cli_cold)
    );
    println!(
        "| incremental, 5 new commits (`fetch` + checkout) | {:.2} s | {:.2} s | {:.2} | <= 1.50 |",
        secs(sdp_incr),
        secs(cli_incr),
        ratio(sdp_incr, cli_incr)
    );
    println!(
        "| first deploy into a new sandbox (CLI: `worktree add`) | {:.2} s | {:.2} s | {:.2} | |",
        secs(sdp_new),
        secs(cli_new),
        ratio(sdp_new, cli_new)
    );
    println!(
        "\n| new sandbox of an already-fetched repo vs SDP cold | cold | new sandbox | ratio | target |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| bytes received | {:.1} MiB | {} B | {:.4} | <= 0.10 |",
        cold_fetch.received_bytes as f64 / (1024.0 * 1024.0),
        new_fetch.received_bytes,
        new_fetch.received_bytes as f64 / cold_fetch.received_bytes.max(1) as f64
    );
    println!(
        "| objects received | {} | {} | {:.4} | |",
        cold_fetch.received_objects,
        new_fetch.received_objects,
        new_fetch.received_objects as f64 / cold_fetch.received_objects.max(1) as f64
    );
    println!(
        "| time (fetch + checkout) | {:.2} s | {:.2} s | {:.2} | |",
        secs(sdp_cold),
        secs(sdp_new),
        ratio(sdp_new, sdp_cold)
    );
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
