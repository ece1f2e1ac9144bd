//! Reading a test run's JUnit XML report: the counts and the failed test
//! names ([`sdp_bus::JunitSummary`]). The report is read from the checkout
//! at a path the template names; it must stay inside the checkout (no
//! symlink out of it) and be at most [`MAX_REPORT_BYTES`].

use std::io::Read;
use std::path::Path;

use sdp_bus::{JunitSummary, test_run::MAX_FAILED_NAMES};

/// The largest report read (a report is a few KiB per hundred tests).
pub const MAX_REPORT_BYTES: u64 = 8 << 20;

/// Why a report was not read.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("no report at {0}")]
    Missing(String),
    #[error("{0} leads out of the checkout")]
    Outside(String),
    #[error("{0} is not a regular file")]
    NotAFile(String),
    #[error("{path} is larger than {} MiB", MAX_REPORT_BYTES >> 20)]
    TooLarge { path: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not JUnit XML: {why}")]
    Malformed { path: String, why: String },
}

/// Reads and summarises `checkout/relative` (already checked by
/// [`sdp_bus::test_run::check_junit_path`]).
pub fn read_report(checkout: &Path, relative: &str) -> Result<JunitSummary, JunitError> {
    let io = |source| JunitError::Io {
        path: relative.to_owned(),
        source,
    };
    let root = std::fs::canonicalize(checkout).map_err(io)?;
    let resolved = match std::fs::canonicalize(checkout.join(relative)) {
        Ok(resolved) => resolved,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(JunitError::Missing(relative.to_owned()));
        }
        Err(err) => return Err(io(err)),
    };
    if !resolved.starts_with(&root) {
        return Err(JunitError::Outside(relative.to_owned()));
    }
    let meta = std::fs::metadata(&resolved).map_err(io)?;
    if !meta.is_file() {
        return Err(JunitError::NotAFile(relative.to_owned()));
    }
    if meta.len() > MAX_REPORT_BYTES {
        return Err(JunitError::TooLarge {
            path: relative.to_owned(),
        });
    }
    let mut text = String::new();
    std::fs::File::open(&resolved)
        .map_err(io)?
        .take(MAX_REPORT_BYTES)
        .read_to_string(&mut text)
        .map_err(io)?;
    summarise(&text).map_err(|why| JunitError::Malformed {
        path: relative.to_owned(),
        why,
    })
}

/// Counts the `<testcase>` elements of a report (under `<testsuites>` or
/// one `<testsuite>`): a case with a `<failure>` is a failure, with an
/// `<error>` an error, with a `<skipped>` skipped. Counting cases rather
/// than trusting the suites' attributes keeps the counts and the names in
/// step.
pub fn summarise(xml: &str) -> Result<JunitSummary, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    if !matches!(root.tag_name().name(), "testsuites" | "testsuite") {
        return Err(format!(
            "the root element is <{}>, not <testsuites> or <testsuite>",
            root.tag_name().name()
        ));
    }
    let mut summary = JunitSummary::default();
    for case in root
        .descendants()
        .filter(|n| n.is_element() && n.has_tag_name("testcase"))
    {
        summary.tests += 1;
        let has = |tag: &str| {
            case.children()
                .any(|c| c.is_element() && c.has_tag_name(tag))
        };
        let failed = if has("failure") {
            summary.failures += 1;
            true
        } else if has("error") {
            summary.errors += 1;
            true
        } else {
            if has("skipped") {
                summary.skipped += 1;
            }
            false
        };
        if failed && summary.failed.len() < MAX_FAILED_NAMES {
            let name = case.attribute("name").unwrap_or("?");
            summary.failed.push(match case.attribute("classname") {
                Some(class) if !class.is_empty() => format!("{class}.{name}"),
                _ => name.to_owned(),
            });
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="e2e" tests="4" failures="1">
    <testcase classname="e2e" name="TestHealth" time="0.01"/>
    <testcase classname="e2e" name="TestUsers" time="0.02"><failure message="want 200">got 500</failure></testcase>
    <testcase classname="e2e" name="TestBroken"><error message="panic"/></testcase>
    <testcase classname="e2e" name="TestLater"><skipped/></testcase>
  </testsuite>
</testsuites>"#;

    #[test]
    fn counts_cases_and_names_the_failed() {
        let summary = summarise(REPORT).expect("parses");
        assert_eq!(
            summary,
            JunitSummary {
                tests: 4,
                failures: 1,
                errors: 1,
                skipped: 1,
                failed: vec!["e2e.TestUsers".into(), "e2e.TestBroken".into()],
            }
        );
    }

    #[test]
    fn refuses_what_is_not_junit() {
        assert!(summarise("<html/>").is_err());
        assert!(summarise("not xml").is_err());
    }

    #[test]
    fn a_report_must_stay_inside_the_checkout() {
        let dir = tempfile::tempdir().expect("temp dir");
        let checkout = dir.path().join("checkout");
        std::fs::create_dir(&checkout).expect("mkdir");
        std::fs::write(dir.path().join("outside.xml"), REPORT).expect("write");
        std::os::unix::fs::symlink("../outside.xml", checkout.join("report.xml")).expect("link");
        assert!(matches!(
            read_report(&checkout, "report.xml"),
            Err(JunitError::Outside(_))
        ));
        std::fs::write(checkout.join("in.xml"), REPORT).expect("write");
        assert_eq!(read_report(&checkout, "in.xml").expect("read").tests, 4);
        assert!(matches!(
            read_report(&checkout, "none.xml"),
            Err(JunitError::Missing(_))
        ));
    }
}
