//! Logging set-up. Logs go to standard error (so `tessera openapi > file` stays clean), as text
//! or JSON; `RUST_LOG` overrides the default filter. Nothing logs secrets: requests are logged by
//! method, route and request id, never headers or bodies.

use std::fmt;
use std::io::IsTerminal as _;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

use crate::config::LogFormat;

const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=warn";

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colours only for a person at a terminal: a log file or a collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Text => builder.fmt_fields(PlainFields).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests build many applications) keeps the first subscriber.
    drop(installed);
}

/// Fields in text logs, as `tracing-subscriber` writes them (`name=value`, the message bare,
/// text quoted and escaped), except that text of printable ASCII without a quote, a backslash
/// or an `=` is written as it is.
///
/// Every request opens a span of three such fields (method, route, request id), and the
/// default formatter's quoting and styling cost as much as the rest of a `/v1/me`. Any other
/// text is quoted and escaped as before, and control characters are escaped everywhere else
/// (in messages and displayed values too, as `tracing-subscriber` does against terminal escape
/// sequences), so no value can end a line or drive a terminal.
struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        // Gathered first and written once: the writer's string would otherwise grow (and move)
        // a few times per span.
        let mut visitor = FieldWriter { text: String::with_capacity(FIELDS_CAPACITY), result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result?;
        writer.write_str(&visitor.text)
    }
}

/// Room for a request span's fields (method, route and a UUID request id) without growing.
const FIELDS_CAPACITY: usize = 128;

struct FieldWriter {
    text: String,
    result: fmt::Result,
}

impl FieldWriter {
    /// Writes the separator and `name=`, or only the separator for the message; false for a
    /// field that is not shown (`log.*`, the `log` crate's metadata) or after a failed write.
    fn begin(&mut self, field: &Field) -> bool {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return false;
        }
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        if name != "message" {
            self.text.push_str(name.strip_prefix("r#").unwrap_or(name));
            self.text.push('=');
        }
        true
    }

    /// Writes `value` formatted, with its control characters escaped (`\n`, `\u{1b}`, …).
    fn push_escaped(&mut self, value: fmt::Arguments<'_>) {
        use fmt::Write as _;
        self.result = Escaping(&mut self.text).write_fmt(value);
    }
}

/// A `fmt::Write` into the fields' text that escapes control characters as they are written,
/// so no formatted value needs a string of its own first.
struct Escaping<'a>(&'a mut String);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            if c.is_control() {
                self.0.extend(c.escape_default());
            } else {
                self.0.push(c);
            }
        }
        Ok(())
    }
}

impl Visit for FieldWriter {
    fn record_str(&mut self, field: &Field, value: &str) {
        let plain =
            || !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_graphic() && !b"\"\\=".contains(&byte));
        if field.name() == "message" {
            if self.begin(field) {
                self.push_escaped(format_args!("{value}"));
            }
        } else if plain() {
            if self.begin(field) {
                self.text.push_str(value);
            }
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.begin(field) {
            self.push_escaped(format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.begin(field) {
            self.push_escaped(format_args!("{value}"));
            let mut source = value.source();
            while let Some(cause) = source {
                self.push_escaped(format_args!(": {cause}"));
                source = cause.source();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::ErrorKind::Other)?.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// Printable ASCII is written bare; text that could forge a field or a line is quoted and
    /// escaped; the message is bare; control characters are escaped in messages and displayed
    /// values too.
    #[test]
    fn plain_text_is_bare_and_anything_else_is_escaped() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .fmt_fields(PlainFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", method = "GET", route = "/v1/users/{ref}", id = "a\nb");
            let _entered = span.enter();
            tracing::info!(forged = "x status=200", quote = "a\"b", empty = "", count = 3, shown = %"a\nb", "hello \"there\"\u{1b}[31m");
        });
        let text =
            String::from_utf8(captured.0.lock().map(|bytes| bytes.clone()).unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            text.trim(),
            r#"INFO request{method=GET route=/v1/users/{ref} id="a\nb"}: hello "there"\u{1b}[31m forged="x status=200" quote="a\"b" empty="" count=3 shown=a\nb"#
        );
    }
}
