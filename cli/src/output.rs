//! How results are shown: `-o table` (plain columns, no colour or box
//! drawing, easy to `grep`/`awk`) or `-o json` (the server's objects as
//! they came). Data goes to stdout; errors and progress to stderr. An
//! error under `-o json` is also printed on stdout as
//! `{"error": {"code", "message"}}`.

use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::CliError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Colour for the human on stderr: only on a terminal and without
/// `NO_COLOR`.
#[derive(Clone, Copy, Debug)]
pub struct Paint {
    pub color: bool,
}

impl Paint {
    fn wrap(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn green(self, text: &str) -> String {
        self.wrap("32", text)
    }

    pub fn red(self, text: &str) -> String {
        self.wrap("31", text)
    }

    pub fn yellow(self, text: &str) -> String {
        self.wrap("33", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }

    pub fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }
}

/// Plain columns: a header row, then one row per item.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| h.to_uppercase()));
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let text = table.to_string();
    let mut out: String = text
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// A JSON value's field as table text: strings bare, null as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            if items.is_empty() {
                "-".to_owned()
            } else {
                items.iter().map(cell).collect::<Vec<_>>().join(",")
            }
        }
        other => other.to_string(),
    }
}

/// A typed field as table text, shown as [`cell`] shows its JSON.
pub fn cell_of<T: Serialize + ?Sized>(value: &T) -> String {
    cell(&serde_json::to_value(value).unwrap_or(Value::Null))
}

/// Writes `text` to stdout.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(CliError::Output)
}

/// Writes `value` as pretty JSON and a newline to stdout, its keys in
/// order (as `serde_json::Value` holds them).
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let value = serde_json::to_value(value).unwrap_or(Value::Null);
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    print(&text)
}

/// The JSON error shape of a failure.
pub fn error_json(code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message } })
}

/// Reports a failed command: on stderr for a human; with `-o json`, also
/// the error object on stdout.
pub fn report(err: &CliError, format: Format, paint: Paint) {
    if format == Format::Json {
        let _ = print_json(&error_json(err.code(), &err.chain()));
    }
    eprintln!("{} {}", paint.red("error:"), err.chain());
}

/// Whether the raw arguments ask for JSON (`-o json`, `-ojson`,
/// `--output json`, `--output=json`), for errors found before clap has
/// parsed them.
pub fn json_requested(args: &[std::ffi::OsString]) -> bool {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    args.iter().enumerate().any(|(i, arg)| {
        matches!(*arg, "-ojson" | "--output=json" | "-o=json")
            || (matches!(*arg, "-o" | "--output") && args.get(i + 1) == Some(&"json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_plain_aligned_columns() {
        let text = render_table(
            &["name", "status"],
            &[
                vec!["alpha".into(), "running".into()],
                vec!["a-much-longer-name".into(), "failed".into()],
            ],
        );
        assert_eq!(
            text,
            "NAME                STATUS\n\
             alpha               running\n\
             a-much-longer-name  failed\n"
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(render_table(&["id"], &[]), "ID\n");
    }

    #[test]
    fn cells_show_null_and_lists_readably() {
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(cell(&json!("x")), "x");
        assert_eq!(cell(&json!(true)), "true");
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
        assert_eq!(cell(&json!([])), "-");
    }

    #[test]
    fn paint_without_colour_adds_nothing() {
        let plain = Paint { color: false };
        assert_eq!(plain.red("x"), "x");
        assert_eq!(Paint { color: true }.red("x"), "\x1b[31mx\x1b[0m");
    }

    #[test]
    fn json_is_recognised_before_parsing() {
        let args = |list: &[&str]| -> Vec<std::ffi::OsString> {
            list.iter().map(|s| (*s).into()).collect()
        };
        assert!(json_requested(&args(&["sdp", "-o", "json", "x"])));
        assert!(json_requested(&args(&["sdp", "x", "--output=json"])));
        assert!(json_requested(&args(&["sdp", "-ojson"])));
        assert!(!json_requested(&args(&["sdp", "-o", "table"])));
        assert!(!json_requested(&args(&["sdp", "json"])));
    }
}
