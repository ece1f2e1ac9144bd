//! [`RealisticGoFixture`]: a Go service laid out as real ones are, committed
//! to a bare repo on a [`GitServer`]: `cmd/<name>/main.go`, `internal/`
//! packages, a `vendor/` holding a made-up dependency (`example.com/greet`,
//! so `go build -mod=vendor` works offline), templates and static files
//! under `web/` read relative to the working directory, the port from a
//! flag (`-listen=:8080`), a health path of `/status`, a variable it
//! needs (`GREETING`), and a `go.mod` that needs Go >= 1.22 (method
//! patterns in `http.ServeMux`, `range` over an int: Go 1.19 cannot
//! compile it). Its `sdp.toml` ([`realistic_sdp_toml`])
//! says how it runs.
//!
//! What it answers:
//! - `GET /status`: `ok`.
//! - `GET /{$}`: `templates/index.html` rendered with the greeting.
//! - `GET /static/…`: files of `static/`.
//! - `GET /api/info`: JSON `{greeting, message, log_level, listen,
//!   database_url, sandbox, cwd}` (`log_level` and `listen` from its
//!   flags, `database_url` from `DATABASE_URL`, `sandbox` from
//!   `SDP_SANDBOX`).
//! - any other method on `/status` (e.g. `POST`): 405, as Go >= 1.22 does.
//!
//! Without `GREETING`, or run from a directory without `templates/`, it
//! exits at once saying why.

use std::path::Path;

use crate::fixture_repo::FixtureRepo;
use crate::git_server::GitServer;

/// The vendored dependency's module path and version.
pub const GREET_MODULE: &str = "example.com/greet";
pub const GREET_VERSION: &str = "v1.4.0";
/// The service's health path.
pub const REALISTIC_HEALTH_PATH: &str = "/status";
/// The port `sdp.toml` gives it.
pub const REALISTIC_PORT: u16 = 5678;
/// `GREETING` in its `sdp.toml`.
pub const REALISTIC_SDP_TOML_GREETING: &str = "hello from sdp.toml";
/// The body of `web/static/style.css`.
pub const REALISTIC_STYLE_CSS: &str = "body { font-family: sans-serif; color: #123456; }\n";

/// A realistic Go service repo on the git server plus the temp work clone
/// it is edited and pushed from.
#[derive(Debug)]
pub struct RealisticGoFixture {
    source: FixtureRepo,
}

impl RealisticGoFixture {
    /// Creates bare repo `repo` on `git_server` and pushes the service, with
    /// its `sdp.toml`, as one commit per branch. The first branch is the
    /// default one (`HEAD`). `repo` names the command (`cmd/<repo>`) and
    /// the module (`example.com/<repo>`): use `[a-z0-9-]` only.
    ///
    /// # Panics
    /// If `branches` is empty or a git command fails.
    pub fn create(git_server: &GitServer, repo: &str, branches: &[&str]) -> RealisticGoFixture {
        let source = FixtureRepo::create(git_server, repo, "sdp-realfix-", branches, |_| {
            realistic_tree(repo)
        });
        RealisticGoFixture { source }
    }

    /// Writes `path` (relative to the repo root, e.g. `sdp.toml`) on
    /// `branch`, commits, pushes; returns the new commit sha.
    pub fn push_file(&self, branch: &str, path: &str, contents: &str) -> String {
        self.source.push_file(branch, path, contents)
    }

    /// The sha at the tip of `branch` in the bare repo.
    pub fn commit(&self, branch: &str) -> String {
        self.source.commit(branch)
    }

    pub fn repo(&self) -> &str {
        self.source.repo()
    }

    /// The work clone (its checkout is whichever branch was pushed last):
    /// a tree `go build` can build as it is.
    pub fn work_path(&self) -> &Path {
        self.source.work_path()
    }
}

/// The service's `sdp.toml`: built from `./cmd/<name>`, run with its port
/// in a flag, from `web/`, healthy on `/status`, `GREETING` set.
pub fn realistic_sdp_toml(name: &str) -> String {
    format!(
        r#"# How SDP runs {name}.
port = {REALISTIC_PORT}
health_path = "{REALISTIC_HEALTH_PATH}"
main_package = "./cmd/{name}"
command = ["/sdp/app", "-listen=:${{PORT}}"]
working_dir = "web"

[env]
GREETING = "{REALISTIC_SDP_TOML_GREETING}"
"#
    )
}

/// Every file of the service, (path, contents).
pub fn realistic_tree(name: &str) -> Vec<(String, String)> {
    let module = format!("example.com/{name}");
    vec![
        (
            "go.mod".into(),
            // go 1.22: method patterns in ServeMux; Go 1.21 refuses the file.
            format!("module {module}\n\ngo 1.22\n\nrequire {GREET_MODULE} {GREET_VERSION}\n"),
        ),
        (
            "vendor/modules.txt".into(),
            format!("# {GREET_MODULE} {GREET_VERSION}\n## explicit; go 1.21\n{GREET_MODULE}\n"),
        ),
        (
            format!("vendor/{GREET_MODULE}/greet.go"),
            GREET_GO.to_owned(),
        ),
        (format!("cmd/{name}/main.go"), main_go(&module)),
        ("internal/config/config.go".into(), CONFIG_GO.to_owned()),
        ("internal/server/server.go".into(), server_go(&module)),
        ("web/templates/index.html".into(), INDEX_HTML.to_owned()),
        (
            "web/static/style.css".into(),
            REALISTIC_STYLE_CSS.to_owned(),
        ),
        ("sdp.toml".into(), realistic_sdp_toml(name)),
        (
            "README.md".into(),
            format!(
                "# {name}\n\nTest fixture made by sdp-testkit, laid out as a real service.\n\
                 Run from `web/`: `go build -mod=vendor -o /tmp/app ./cmd/{name} && cd web && \
                 GREETING=hi /tmp/app -listen=:8080`.\n"
            ),
        ),
    ]
}

const GREET_GO: &str = r#"// Package greet is a made-up dependency, vendored by the sdp-testkit
// realistic fixture.
package greet

import "fmt"

// Version is this copy's version.
const Version = "v1.4.0"

// Message greets whom with greeting.
func Message(greeting, whom string) string {
	return fmt.Sprintf("%s, %s! (greet %s)", greeting, whom, Version)
}
"#;

const CONFIG_GO: &str = r#"// Package config reads the service's settings from its environment.
package config

import (
	"errors"
	"os"
)

// Config is what the service needs to run.
type Config struct {
	Greeting    string
	DatabaseURL string
	Sandbox     string
}

// FromEnv reads GREETING (required), DATABASE_URL and SDP_SANDBOX.
func FromEnv() (Config, error) {
	c := Config{
		Greeting:    os.Getenv("GREETING"),
		DatabaseURL: os.Getenv("DATABASE_URL"),
		Sandbox:     os.Getenv("SDP_SANDBOX"),
	}
	if c.Greeting == "" {
		return c, errors.New("GREETING is not set")
	}
	return c, nil
}
"#;

fn server_go(module: &str) -> String {
    format!(
        r#"// Package server holds the service's HTTP handlers.
package server

import (
	"encoding/json"
	"html/template"
	"net/http"
	"os"

	"example.com/greet"
	"{module}/internal/config"
)

// Options are the command line's settings.
type Options struct {{
	Listen   string
	LogLevel string
}}

// New parses templates/ (relative to the working directory) and returns
// the service's handler.
func New(cfg config.Config, opts Options) (http.Handler, error) {{
	page, err := template.ParseFiles("templates/index.html")
	if err != nil {{
		return nil, err
	}}
	info := func(w http.ResponseWriter, r *http.Request) {{
		cwd, _ := os.Getwd()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{{
			"greeting":     cfg.Greeting,
			"message":      greet.Message(cfg.Greeting, "sandbox "+cfg.Sandbox),
			"log_level":    opts.LogLevel,
			"listen":       opts.Listen,
			"database_url": cfg.DatabaseURL,
			"sandbox":      cfg.Sandbox,
			"cwd":          cwd,
		}})
	}}
	index := func(w http.ResponseWriter, r *http.Request) {{
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page.Execute(w, map[string]string{{
			"Greeting": cfg.Greeting,
			"Message":  greet.Message(cfg.Greeting, "visitor"),
		}})
	}}
	status := func(w http.ResponseWriter, r *http.Request) {{
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok"))
	}}
	// Method patterns, and ranging over an int: Go >= 1.22 (and a go.mod
	// saying so).
	routes := []struct {{
		pattern string
		handler http.Handler
	}}{{
		{{"GET /status", http.HandlerFunc(status)}},
		{{"GET /static/", http.StripPrefix("/static/", http.FileServer(http.Dir("static")))}},
		{{"GET /api/info", http.HandlerFunc(info)}},
		{{"GET /{{$}}", http.HandlerFunc(index)}},
	}}
	mux := http.NewServeMux()
	for i := range len(routes) {{
		mux.Handle(routes[i].pattern, routes[i].handler)
	}}
	return mux, nil
}}
"#
    )
}

fn main_go(module: &str) -> String {
    format!(
        r#"// Command service of the sdp-testkit realistic fixture.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"

	"{module}/internal/config"
	"{module}/internal/server"
)

func main() {{
	listen := flag.String("listen", ":8080", "address to listen on")
	logLevel := flag.String("log-level", "info", "how much to log")
	flag.Parse()
	cfg, err := config.FromEnv()
	if err != nil {{
		fmt.Fprintln(os.Stderr, "config:", err)
		os.Exit(2)
	}}
	handler, err := server.New(cfg, server.Options{{Listen: *listen, LogLevel: *logLevel}})
	if err != nil {{
		fmt.Fprintln(os.Stderr, "templates:", err)
		os.Exit(2)
	}}
	fmt.Printf("listening on %s (log level %s)\n", *listen, *logLevel)
	if err := http.ListenAndServe(*listen, handler); err != nil {{
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}}
}}
"#
    )
}

const INDEX_HTML: &str = r#"<!doctype html>
<html>
<head><title>{{.Greeting}}</title><link rel="stylesheet" href="/static/style.css"></head>
<body>
<h1 id="greeting">{{.Greeting}}</h1>
<p id="message">{{.Message}}</p>
</body>
</html>
"#;
