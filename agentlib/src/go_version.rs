//! Go versions and what a `go.mod` asks of the toolchain that builds it:
//! its `go` line (`go 1.22`, `go 1.22.3`) and `toolchain` line
//! (`toolchain go1.22.6`). Pure text, no I/O; the agent picks a toolchain
//! with it ([`crate::go_toolchains`]).

use std::cmp::Ordering;
use std::fmt;

/// A Go release: `1.22`, `1.22.3`. Compared numerically (1.9 < 1.19 <
/// 1.22 < 1.22.6), a missing patch as 0. A prerelease (`1.21rc1`) is
/// taken as its release (`1.21`).
#[derive(Clone, Copy, Debug)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    /// `None` when the text had none (`1.22`): shown without one.
    pub patch: Option<u32>,
}

impl GoVersion {
    /// Parses `1.22`, `1.22.3`, `go1.22.12`, `1.21rc1`, `go1.22.6+auto`;
    /// `None` for anything else (`devel …`, `1`, `1.x`).
    pub fn parse(text: &str) -> Option<GoVersion> {
        let text = text.trim();
        let text = text.strip_prefix("go").unwrap_or(text);
        // What follows the numbers (`rc1`, `beta2`, `+auto`, `-custom`,
        // ` X:boringcrypto`) does not change which release it is.
        let end = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len());
        let mut parts = text[..end].split('.');
        let number = |part: Option<&str>| -> Option<u32> {
            part.filter(|p| !p.is_empty() && p.len() <= 9)?.parse().ok()
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let patch = match parts.next() {
            None => None,
            Some(part) => Some(number(Some(part))?),
        };
        if parts.next().is_some() {
            return None;
        }
        Some(GoVersion {
            major,
            minor,
            patch,
        })
    }

    fn key(&self) -> (u32, u32, u32) {
        (self.major, self.minor, self.patch.unwrap_or(0))
    }

    /// The Debian package with this release's toolchain: `golang-1.24-go`.
    pub fn debian_package(&self) -> String {
        format!("golang-{}.{}-go", self.major, self.minor)
    }
}

impl PartialEq for GoVersion {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for GoVersion {}

impl PartialOrd for GoVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GoVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(patch) = self.patch {
            write!(f, ".{patch}")?;
        }
        Ok(())
    }
}

/// What a `go.mod` asks of the toolchain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoModAsks {
    /// The `go` line; `None` when there is none (or it is not a version:
    /// `go build` then says what is wrong with it).
    pub go: Option<GoVersion>,
    /// The `toolchain` line as written (`go1.22.6`), and its version.
    pub toolchain: Option<(String, GoVersion)>,
}

/// Go's rule for a `go.mod` without a `go` line: it is read as `go 1.16`.
pub const NO_GO_LINE: GoVersion = GoVersion {
    major: 1,
    minor: 16,
    patch: None,
};

impl GoModAsks {
    /// Reads the `go` and `toolchain` lines of a `go.mod` (comments and
    /// every other directive ignored; the last of a repeated line wins, as
    /// `go` refuses such a file anyway).
    pub fn parse(text: &str) -> GoModAsks {
        let mut asks = GoModAsks {
            go: None,
            toolchain: None,
        };
        // Inside `require ( … )` and the like, lines are not directives.
        let mut in_block = false;
        for line in text.lines() {
            let line = line.split("//").next().unwrap_or_default().trim();
            if in_block {
                in_block = line != ")";
                continue;
            }
            if line.ends_with('(') {
                in_block = true;
                continue;
            }
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("go"), Some(version), None) => asks.go = GoVersion::parse(version),
                (Some("toolchain"), Some(name), None) => {
                    asks.toolchain = name
                        .starts_with("go")
                        .then(|| GoVersion::parse(name))
                        .flatten()
                        .map(|version| (name.to_owned(), version));
                }
                _ => {}
            }
        }
        asks
    }

    /// The oldest release that satisfies both lines (no `go` line:
    /// [`NO_GO_LINE`]).
    pub fn minimum(&self) -> GoVersion {
        let go = self.go.unwrap_or(NO_GO_LINE);
        match &self.toolchain {
            Some((_, toolchain)) if *toolchain > go => *toolchain,
            _ => go,
        }
    }

    /// What the build log says was asked: `>= 1.22`, `>= 1.22.6: toolchain
    /// go1.22.6`, `no go line: >= 1.16`.
    pub fn describe(&self) -> String {
        match (&self.go, &self.toolchain) {
            (go, Some((name, toolchain))) if *toolchain > go.unwrap_or(NO_GO_LINE) => {
                format!(">= {toolchain}: toolchain {name}")
            }
            (Some(go), _) => format!(">= {go}"),
            (None, _) => format!("no go line, so >= {NO_GO_LINE}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> GoVersion {
        GoVersion::parse(text).unwrap_or_else(|| panic!("{text} parses"))
    }

    #[test]
    fn versions_parse_in_their_usual_shapes() {
        assert_eq!(v("1.22").to_string(), "1.22");
        assert_eq!(v("1.22.3").to_string(), "1.22.3");
        assert_eq!(v("go1.22.12").to_string(), "1.22.12");
        assert_eq!(v("go1.22.12\n").to_string(), "1.22.12");
        assert_eq!(v("1.21rc1").to_string(), "1.21");
        assert_eq!(v("go1.21rc1"), v("1.21"));
        assert_eq!(v("go1.22.6+auto").to_string(), "1.22.6");
        assert_eq!(v("go1.20 X:boringcrypto").to_string(), "1.20");
        for bad in [
            "",
            "go",
            "1",
            "1.",
            "1.x",
            "devel go1.23-abc",
            "x1.2",
            "1.2.3.4",
        ] {
            assert_eq!(GoVersion::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(v("1.9") < v("1.19"));
        assert!(v("1.19") < v("1.22"));
        assert!(v("1.22") < v("1.22.6"));
        assert!(v("1.22.6") < v("1.22.12"));
        assert!(v("1.22.12") < v("1.23"));
        assert!(v("1.99") > v("1.22.12"));
        // A missing patch is 0, either way round.
        assert_eq!(v("1.22"), v("1.22.0"));
        assert!(v("1.20") >= v("1.20.0"));
        assert!(v("1.21rc2") < v("1.21.1"));
    }

    #[test]
    fn debian_packages_are_named_by_release() {
        assert_eq!(v("1.24").debian_package(), "golang-1.24-go");
        assert_eq!(v("1.22.6").debian_package(), "golang-1.22-go");
    }

    #[test]
    fn go_mod_lines_are_read() {
        let asks = GoModAsks::parse(
            "module example.com/users // the users service\n\n\
             go 1.22.3 // needs range over int\n\
             toolchain go1.22.6\n\n\
             require (\n\tgo.example/x v1.0.0\n)\n",
        );
        assert_eq!(asks.go, Some(v("1.22.3")));
        assert_eq!(asks.toolchain, Some(("go1.22.6".to_owned(), v("1.22.6"))));
        assert_eq!(asks.minimum().to_string(), "1.22.6");
        assert_eq!(asks.describe(), ">= 1.22.6: toolchain go1.22.6");

        let plain = GoModAsks::parse("module m\n\ngo 1.22\n");
        assert_eq!(plain.minimum().to_string(), "1.22");
        assert_eq!(plain.describe(), ">= 1.22");

        // A toolchain line older than the go line asks nothing more.
        let older = GoModAsks::parse("module m\ngo 1.23\ntoolchain go1.22.1\n");
        assert_eq!(older.minimum().to_string(), "1.23");
        assert_eq!(older.describe(), ">= 1.23");
    }

    #[test]
    fn a_go_mod_without_a_go_line_asks_for_go_1_16() {
        let asks = GoModAsks::parse("module m\n\nrequire example.com/x v1.0.0\n");
        assert_eq!(asks.go, None);
        assert_eq!(asks.minimum().to_string(), "1.16");
        assert_eq!(asks.describe(), "no go line, so >= 1.16");
        // Not directives: words in a require block, a commented line,
        // `toolchain default`, a go line with more words.
        let asks = GoModAsks::parse(
            "module m\n// go 1.30\nrequire (\n\tgo 1.31\n)\ntoolchain default\ngo 1.2 3\n",
        );
        assert_eq!(
            asks,
            GoModAsks {
                go: None,
                toolchain: None
            }
        );
    }

    #[test]
    fn a_prerelease_go_line_counts_as_its_release() {
        let asks = GoModAsks::parse("module m\ngo 1.21rc1\n");
        assert_eq!(asks.minimum(), v("1.21"));
    }
}
