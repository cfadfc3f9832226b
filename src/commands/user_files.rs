//! Reading the lines of an import file (JSON Lines or CSV) into records, batch by batch, and
//! opening an export file only its owner can read.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::rc::Rc;

use anyhow::{Context as _, bail};

use crate::cli::FileFormat;
use crate::service::import::Line;
use crate::service::import::record::UserRecord;

/// The longest line read: an account is a few hundred bytes, its metadata at most 16 KiB.
const MAX_LINE_BYTES: u64 = 64 * 1024;

/// The columns a CSV file may have: the fields of [`UserRecord`].
const COLUMNS: [&str; 19] = [
    "id",
    "username",
    "email",
    "email_verified",
    "email_verified_at",
    "phone",
    "first_name",
    "last_name",
    "display_name",
    "role",
    "status",
    "metadata",
    "created_at",
    "updated_at",
    "last_login_at",
    "pending_email",
    "password",
    "password_hash",
    "password_salt",
];

/// A line read: its number, its record (none for a blank line) and its size in bytes.
type ReadLine = (u64, Option<Result<UserRecord, String>>, u64);

/// Records read from an import file, with their line numbers.
pub enum RecordReader {
    Jsonl { reader: BufReader<File>, line: u64 },
    Csv { reader: csv::Reader<Bounded>, headers: csv::StringRecord, consumed: u64, budget: Rc<Cell<u64>> },
}

/// A file that fails to read once more than a budget has been read since the last record: the
/// CSV reader would otherwise grow one record without end (an unclosed quote takes the rest of
/// the file).
pub struct Bounded {
    file: File,
    /// Bytes left before the current record is too long; reset after each record.
    budget: Rc<Cell<u64>>,
}

impl std::io::Read for Bounded {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let left = self.budget.get();
        if left == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a CSV record longer than 64 KiB"));
        }
        let limit = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let read = self.file.read(&mut buffer[..limit])?;
        self.budget.set(left - read as u64);
        Ok(read)
    }
}

impl RecordReader {
    /// Opens the file; a CSV file's header row is checked at once, so that a misspelt column
    /// stops the import before any line is read.
    pub fn new(file: File, format: FileFormat) -> anyhow::Result<Self> {
        match format {
            FileFormat::Jsonl => Ok(Self::Jsonl { reader: BufReader::new(file), line: 0 }),
            FileFormat::Csv => {
                let budget = Rc::new(Cell::new(MAX_LINE_BYTES));
                let bounded = Bounded { file, budget: budget.clone() };
                let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bounded);
                let headers = reader.headers().context("reading the CSV header row")?.clone();
                for header in &headers {
                    if !COLUMNS.contains(&header) {
                        bail!("unknown CSV column {header:?}; the columns are: {}", COLUMNS.join(", "));
                    }
                }
                Ok(Self::Csv { reader, headers, consumed: 0, budget })
            }
        }
    }

    /// Up to `size` records, and the bytes of the file they took; empty at the end.
    pub fn next_batch(&mut self, size: usize) -> anyhow::Result<(Vec<Line>, u64)> {
        let mut batch = Vec::with_capacity(size);
        let mut bytes = 0;
        while batch.len() < size {
            let Some((line, record, taken)) = self.next_record()? else { break };
            bytes += taken;
            if let Some(record) = record {
                batch.push((line, record));
            }
        }
        Ok((batch, bytes))
    }

    /// The next line: its number, its record (none for a blank line) and its size in bytes.
    fn next_record(&mut self) -> anyhow::Result<Option<ReadLine>> {
        match self {
            Self::Jsonl { reader, line } => {
                let mut buffer = Vec::new();
                let taken = reader.by_ref().take(MAX_LINE_BYTES + 1).read_until(b'\n', &mut buffer)?;
                if taken == 0 {
                    return Ok(None);
                }
                *line += 1;
                let mut taken = taken as u64;
                if !buffer.ends_with(b"\n") && taken > MAX_LINE_BYTES {
                    taken += reader.skip_until(b'\n')? as u64;
                    let refused = Err(format!("longer than {} KiB", MAX_LINE_BYTES / 1024));
                    return Ok(Some((*line, Some(refused), taken)));
                }
                Ok(Some((*line, json_record(&buffer, *line == 1), taken)))
            }
            Self::Csv { reader, headers, consumed, budget } => {
                let mut row = csv::StringRecord::new();
                // What the reader has buffered ahead counts against this record too: the budget
                // is twice the longest record, so a record within it always fits.
                budget.set(2 * MAX_LINE_BYTES);
                let read = reader.read_record(&mut row);
                let position = reader.position().clone();
                let taken = position.byte().saturating_sub(*consumed);
                *consumed = position.byte();
                match read {
                    Ok(false) => Ok(None),
                    Ok(true) => {
                        let line = row.position().map_or(position.line(), csv::Position::line);
                        let record = row.deserialize::<UserRecord>(Some(headers)).map_err(|e| csv_reason(&e, headers));
                        Ok(Some((line, Some(record), taken)))
                    }
                    Err(error) if matches!(error.kind(), csv::ErrorKind::Io(_)) => Err(error.into()),
                    Err(error) => {
                        let line = error.position().map_or(position.line(), csv::Position::line);
                        Ok(Some((line, Some(Err(csv_reason(&error, headers))), taken)))
                    }
                }
            }
        }
    }
}

/// A JSON line's record; none for a blank line. The reason for a refusal names the field, never
/// its value (which may be a password).
fn json_record(bytes: &[u8], first: bool) -> Option<Result<UserRecord, String>> {
    let bytes = if first { bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes) } else { bytes };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let record = serde_path_to_error::deserialize::<_, UserRecord>(&mut deserializer).map_err(|error| {
        let inner = error.inner();
        if inner.is_syntax() || inner.is_eof() {
            format!("not valid JSON (at column {})", inner.column())
        } else if inner.to_string().starts_with("unknown field") {
            inner.to_string().split(", expected").next().unwrap_or_default().to_owned()
        } else {
            format!("{}: not the kind of value this field holds", error.path())
        }
    });
    Some(record.and_then(|record| deserializer.end().map(|()| record).map_err(|_| "more than one JSON value".into())))
}

fn csv_reason(error: &csv::Error, headers: &csv::StringRecord) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_owned(),
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header row has {expected_len}")
        }
        csv::ErrorKind::Deserialize { err, .. } => {
            let field = err.field().and_then(|i| headers.get(i as usize)).unwrap_or("a field");
            format!("{field}: not the kind of value this field holds")
        }
        _ => "unreadable CSV".to_owned(),
    }
}

/// A new or truncated file only its owner may read or write: an export may hold password hashes.
pub fn open_private(path: &Path) -> anyhow::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    // The mode above applies to a new file only; one that was there is narrowed too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
    }
    Ok(file)
}
