//! [`QaFixture`]: a Go end-to-end test suite in a repo of its own, as a QA
//! team keeps one. `e2e/` holds `go test` tests of the `users` service
//! ([`crate::GoFixture`]) reached at `$SDP_SERVICE_URL_USERS`;
//! `cmd/junit` runs `go test -json` on the packages it is given, prints
//! the tests' output, writes a JUnit XML report (`-o`) and exits with
//! `go test`'s exit code. Branch `main` passes; branch [`FAILING_BRANCH`]
//! adds one test that fails. Standard library only.

use crate::fixture_repo::FixtureRepo;
use crate::git_server::GitServer;

/// The branch whose suite has a failing test ([`FAILING_TEST`]).
pub const FAILING_BRANCH: &str = "failing";
/// The failing test's name as the JUnit report has it (`classname.name`).
pub const FAILING_TEST: &str = "example.com/qa/e2e.TestUsersIsAtRevisionTwo";
/// The command that runs the suite and writes `report.xml`.
pub const QA_COMMAND: [&str; 6] = ["go", "run", "./cmd/junit", "-o", "report.xml", "./e2e/..."];
/// Where [`QA_COMMAND`] writes the report.
pub const QA_REPORT: &str = "report.xml";

#[derive(Debug)]
pub struct QaFixture {
    source: FixtureRepo,
}

impl QaFixture {
    /// Creates bare repo `repo` on `git` with branches `main` (three
    /// passing tests) and [`FAILING_BRANCH`] (the same and a failing one).
    pub fn create(git_server: &GitServer, repo: &str) -> QaFixture {
        let source = FixtureRepo::create(
            git_server,
            repo,
            "sdp-qafix-",
            &["main", FAILING_BRANCH],
            |branch| {
                let mut tests = PASSING_TESTS.to_owned();
                if branch == FAILING_BRANCH {
                    tests.push_str(FAILING_TESTS);
                }
                vec![
                    ("go.mod".into(), "module example.com/qa\n\ngo 1.19\n".into()),
                    ("e2e/e2e_test.go".into(), tests),
                    ("cmd/junit/main.go".into(), JUNIT_MAIN.into()),
                ]
            },
        );
        QaFixture { source }
    }

    pub fn commit(&self, branch: &str) -> String {
        self.source.commit(branch)
    }
}

const PASSING_TESTS: &str = r#"// End-to-end tests of the users service of a sandbox (sdp-testkit).
package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"
)

var client = &http.Client{Timeout: 10 * time.Second}

func usersURL(t *testing.T) string {
	url := os.Getenv("SDP_SERVICE_URL_USERS")
	if url == "" {
		t.Fatal("SDP_SERVICE_URL_USERS is not set")
	}
	return url
}

func get(t *testing.T, path string) (int, []byte) {
	resp, err := client.Get(usersURL(t) + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func info(t *testing.T) map[string]string {
	code, body := get(t, "/info")
	if code != 200 {
		t.Fatalf("GET /info: status %d", code)
	}
	var answer map[string]string
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatalf("GET /info: %v", err)
	}
	return answer
}

func TestHealth(t *testing.T) {
	code, body := get(t, "/healthz")
	if code != 200 || string(body) != "ok" {
		t.Fatalf("GET /healthz: %d %q", code, body)
	}
}

func TestUsersNamesItself(t *testing.T) {
	if got := info(t)["service"]; got != "users" {
		t.Fatalf("service = %q, want users", got)
	}
	t.Logf("the sandbox is %s", os.Getenv("SDP_SANDBOX"))
}

func TestSandboxIsNamed(t *testing.T) {
	if os.Getenv("SDP_SANDBOX") == "" {
		t.Fatal("SDP_SANDBOX is not set")
	}
}
"#;

const FAILING_TESTS: &str = r#"
func TestUsersIsAtRevisionTwo(t *testing.T) {
	if got := info(t)["revision"]; got != "2" {
		t.Fatalf("revision = %q, want 2", got)
	}
}
"#;

const JUNIT_MAIN: &str = r#"// Runs `go test -json` on the packages given, prints the tests' output,
// writes a JUnit XML report and exits with go test's exit code.
package main

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"os/exec"
)

type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type failure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

type testcase struct {
	Classname string   `xml:"classname,attr"`
	Name      string   `xml:"name,attr"`
	Time      float64  `xml:"time,attr"`
	Failure   *failure `xml:"failure,omitempty"`
	Skipped   *struct{} `xml:"skipped,omitempty"`
}

type suites struct {
	XMLName  xml.Name   `xml:"testsuites"`
	Tests    int        `xml:"tests,attr"`
	Failures int        `xml:"failures,attr"`
	Cases    []testcase `xml:"testsuite>testcase"`
}

func main() {
	out := flag.String("o", "report.xml", "where the JUnit report goes")
	flag.Parse()
	cmd := exec.Command("go", append([]string{"test", "-json", "-count=1"}, flag.Args()...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	output := map[string]string{}
	report := suites{}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		var e event
		if json.Unmarshal(lines.Bytes(), &e) != nil {
			fmt.Println(lines.Text())
			continue
		}
		key := e.Package + "." + e.Test
		switch e.Action {
		case "output":
			fmt.Print(e.Output)
			output[key] += e.Output
		case "pass", "fail", "skip":
			if e.Test == "" {
				continue
			}
			c := testcase{Classname: e.Package, Name: e.Test, Time: e.Elapsed}
			if e.Action == "fail" {
				c.Failure = &failure{Message: "failed", Text: output[key]}
				report.Failures++
			}
			if e.Action == "skip" {
				c.Skipped = &struct{}{}
			}
			report.Tests++
			report.Cases = append(report.Cases, c)
		}
	}
	code := 0
	if err := cmd.Wait(); err != nil {
		code = 1
		if exit, ok := err.(*exec.ExitError); ok {
			code = exit.ExitCode()
		}
	}
	data, _ := xml.MarshalIndent(report, "", "  ")
	if err := os.WriteFile(*out, append([]byte(xml.Header), data...), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("junit: %d tests, %d failures -> %s\n", report.Tests, report.Failures, *out)
	os.Exit(code)
}
"#;
