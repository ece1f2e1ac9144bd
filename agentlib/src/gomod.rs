//! Reads a failed `go build`'s stderr for the module it could not get
//! (not vendored, not in the module cache, not on the configured proxy) or
//! a stale `vendor/`, so the deployment's error names the module and the
//! fixes instead of "go build exited with status 1". Pure text, no I/O.

use crate::config::GoConfig;
use crate::error::DeployError;

/// The error for a build that failed for lack of a module or because
/// `vendor/` is stale; `None` for any other failure (a compile error).
pub fn failure(stderr: &[String], go: &GoConfig) -> Option<DeployError> {
    if let Some(at) = stderr
        .iter()
        .position(|l| l.contains("inconsistent vendoring"))
    {
        // The next non-empty line says what differs.
        let detail = stderr[at + 1..]
            .iter()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .unwrap_or("inconsistent vendoring");
        return Some(DeployError::GoVendorStale {
            detail: detail.to_owned(),
        });
    }
    let mut last_fetched: Option<&str> = None;
    for line in stderr {
        let text = line.trim();
        // `go: downloading example.com/x v1.2.3`, `go: finding module for package p`
        if let Some(rest) = text
            .strip_prefix("go: downloading ")
            .or_else(|| text.strip_prefix("go: finding module for package "))
        {
            last_fetched = rest.split_whitespace().next();
            continue;
        }
        if let Some(package) = vendored_package_missing(text) {
            return Some(DeployError::GoVendorStale {
                detail: format!("package {package} is not in vendor/"),
            });
        }
        if !is_module_failure(text) {
            continue;
        }
        let module = named_in(text)
            .or_else(|| last_fetched.map(|m| format!("module {m}")))
            .unwrap_or_else(|| "a module".to_owned());
        return Some(DeployError::GoModuleMissing {
            module,
            proxy: go.proxy.clone(),
        });
    }
    None
}

/// Messages of go that mean "could not get a module".
fn is_module_failure(text: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "module lookup disabled by GOPROXY=off",
        "missing go.sum entry for module providing package",
        "cannot find module providing package",
        "no required module provides package",
        "@v/",
        "unrecognized import path",
    ];
    MARKERS.iter().any(|m| text.contains(m))
}

/// The module or package the line names: `module M` for `M@v1.2.3: …`,
/// `a module providing package P` for go's "… providing package P".
fn named_in(text: &str) -> Option<String> {
    for marker in [
        "missing go.sum entry for module providing package ",
        "cannot find module providing package ",
        "no required module provides package ",
    ] {
        if let Some(at) = text.find(marker) {
            let package = text[at + marker.len()..]
                .split([' ', ':', ';'])
                .next()
                .filter(|p| !p.is_empty())?;
            return Some(format!("a module providing package {package}"));
        }
    }
    // `main.go:2:8: example.com/x@v1.2.3: reading …`: the first word with
    // an `@v` and a `:` after it.
    text.split_whitespace()
        .filter_map(|word| word.strip_suffix(':'))
        .find_map(|word| {
            let (module, version) = word.split_once('@')?;
            (version.starts_with('v') && module.contains('.')).then(|| format!("module {module}"))
        })
}

/// `cannot find package "." in:` followed by a `…/vendor/<package>` line
/// is reported on that second line; the first gives nothing to name.
fn vendored_package_missing(text: &str) -> Option<&str> {
    let (_, package) = text.split_once("/vendor/")?;
    (!package.is_empty() && !text.contains(' ')).then_some(package)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    fn message(stderr: &str, proxy: Option<&str>) -> Option<String> {
        let go = GoConfig {
            proxy: proxy.map(str::to_owned),
            ..Default::default()
        };
        failure(&lines(stderr), &go).map(|e| e.to_string())
    }

    #[test]
    fn goproxy_off_names_the_module_being_downloaded_and_both_fixes() {
        let text = message(
            "go: downloading example.com/greet v1.0.0\nmain.go:2:8: module lookup disabled by GOPROXY=off\n",
            None,
        )
        .expect("a module failure");
        assert!(text.contains("module example.com/greet"), "{text}");
        assert!(text.contains("go mod vendor"), "{text}");
        assert!(text.contains("go.proxy"), "{text}");
        assert!(text.contains("GOPROXY=off"), "{text}");
    }

    #[test]
    fn an_unrequired_package_is_named() {
        let text = message(
            "go: finding module for package example.com/greet\nmain.go:2:8: cannot find module providing package example.com/greet: module lookup disabled by GOPROXY=off\n",
            None,
        )
        .expect("a module failure");
        assert!(
            text.contains("a module providing package example.com/greet:"),
            "{text}"
        );
        let text = message(
            "main.go:2:8: missing go.sum entry for module providing package example.com/greet (imported by example.com/svc); to add:\n",
            None,
        )
        .expect("a module failure");
        assert!(text.contains("package example.com/greet"), "{text}");
    }

    #[test]
    fn a_proxy_without_the_version_is_named_with_the_proxy() {
        let text = message(
            "go: downloading example.com/greet v1.0.0-x2\nmain.go:2:8: example.com/greet@v1.0.0-x2: reading file:///srv/goproxy/example.com/greet/@v/v1.0.0-x2.zip: no such file or directory\n",
            Some("file:///srv/goproxy"),
        )
        .expect("a module failure");
        assert!(text.contains("module example.com/greet:"), "{text}");
        assert!(text.contains("file:///srv/goproxy"), "{text}");
        assert!(text.contains("go mod vendor"), "{text}");
    }

    #[test]
    fn a_stale_vendor_dir_says_so() {
        let text = message(
            "go: inconsistent vendoring in /src:\n\texample.com/greet@v1.0.0: is explicitly required in go.mod, but not marked as explicit in vendor/modules.txt\n\n\tTo ignore the vendor directory, use -mod=readonly or -mod=mod.\n",
            None,
        )
        .expect("a vendor failure");
        assert!(text.contains("vendor/ does not match go.mod"), "{text}");
        assert!(
            text.contains("example.com/greet@v1.0.0: is explicitly"),
            "{text}"
        );
        let text = message(
            "main.go:2:8: cannot find package \".\" in:\n\t/src/vendor/example.com/greet\n",
            None,
        )
        .expect("a vendor failure");
        assert!(
            text.contains("package example.com/greet is not in vendor/"),
            "{text}"
        );
    }

    #[test]
    fn compile_errors_are_not_module_failures() {
        assert_eq!(
            message(
                "# example.com/users\n./main.go:5:7: undefined: this\n",
                None
            ),
            None
        );
    }
}
