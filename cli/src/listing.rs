//! How the list commands (`sdp history`, `sdp sandbox ls`, `sdp audit`,
//! `sdp deliveries`, `sdp test --list`) print: a JSON array of the items
//! with `-o json`, else one table row per item under the type's headers.
//! Each listed type says its columns once ([`Listed`]); fetching every
//! page (or `--limit` items) is the typed client's `all_*` methods.

use serde::Serialize;

use crate::output::{self, render_table};
use crate::{CliError, Ctx, Exit};

/// A type the CLI lists: its column headers and one row of cells.
pub trait Listed: Serialize {
    const HEADERS: &'static [&'static str];

    fn cells(&self) -> Vec<String>;
}

/// The items as a table under `T::HEADERS`.
pub fn table<T: Listed>(items: &[T]) -> String {
    let rows: Vec<Vec<String>> = items.iter().map(Listed::cells).collect();
    render_table(T::HEADERS, &rows)
}

/// Prints `items`: a JSON array under `-o json`, else [`table`].
pub fn print<T: Listed>(ctx: &Ctx, items: &[T]) -> Result<Exit, CliError> {
    if ctx.json() {
        output::print_json(items)?;
    } else {
        output::print(&table(items))?;
    }
    Ok(Exit::Ok)
}

/// A commit as a cell: its first ten characters, or `-`.
pub fn short_commit(commit: Option<&str>) -> String {
    commit
        .map(|c| c.chars().take(10).collect())
        .unwrap_or_else(|| "-".to_owned())
}

/// An optional text as a cell: itself, or `-`.
pub fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// `--limit` as the client's item count (`None`: every item).
pub fn wanted(limit: Option<u32>) -> Option<usize> {
    limit.map(|limit| limit as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        name: &'static str,
        commit: Option<&'static str>,
    }

    impl Listed for Row {
        const HEADERS: &'static [&'static str] = &["name", "commit"];

        fn cells(&self) -> Vec<String> {
            vec![self.name.to_owned(), short_commit(self.commit)]
        }
    }

    #[test]
    fn a_table_has_the_headers_then_a_row_per_item() {
        let rows = [
            Row {
                name: "a",
                commit: Some("0123456789abcdef"),
            },
            Row {
                name: "b",
                commit: None,
            },
        ];
        assert_eq!(table(&rows), "NAME  COMMIT\na     0123456789\nb     -\n");
    }
}
