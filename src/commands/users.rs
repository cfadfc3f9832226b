//! `tessera users import FILE` and `tessera users export`: moving accounts in with the
//! password hashes they have, and out again (see README, "Moving in").

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};

use super::progress::{Progress, Unit};
use super::user_files::{RecordReader, open_private};
use crate::cli::{ExportArgs, FileFormat, ImportArgs, SaltedDigestsArg};
use crate::config::Config;
use crate::domain::listing::UserFilter;
use crate::service::hashing::{FirebaseParams, PasswordHasher};
use crate::service::import::record::{Allowances, SaltedDigests, UserRecord};
use crate::service::import::{ImportCounts, ImportOptions, Importer};
use crate::storage::{Store, user_import, user_list};

/// Refused lines printed before the rest are only counted.
const SHOWN: u64 = 100;
/// Accounts read per page of an export.
const EXPORT_PAGE: u32 = 1_000;

pub async fn import(config: &Config, args: ImportArgs) -> anyhow::Result<()> {
    let format = match args.format {
        Some(format) => format,
        None => format_of(&args.file)?,
    };
    let allow = Allowances {
        legacy_digests: args.allow_legacy_digests,
        salted_digests: args.salted_digests.map(|made_by| match made_by {
            SaltedDigestsArg::Django => SaltedDigests::Django,
            SaltedDigestsArg::Werkzeug => SaltedDigests::Werkzeug,
        }),
        firebase: firebase(&args)?,
    };
    let file = File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = RecordReader::new(file, format)?;
    let store = Store::connect(config.database_url.expose(), 2).await?;
    store.migrate().await?;
    let options = ImportOptions { dry_run: args.dry_run, update: args.update, allow };
    let importer = Importer::new(store.clone(), PasswordHasher::new(config.hash_concurrency), options);
    let source = args.file.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let outcome = run_import(importer, &mut reader, size, args.batch_size as usize, &source).await;
    store.close().await;
    let (counts, elapsed) = outcome?;
    summarise(&counts, args.dry_run, elapsed);
    if counts.refused > 0 {
        bail!(
            "{} of {} lines refused (see above); the others {}",
            counts.refused,
            counts.lines,
            if args.dry_run { "would be imported" } else { "were imported, and a re-run skips them" }
        );
    }
    Ok(())
}

async fn run_import(
    mut importer: Importer,
    reader: &mut RecordReader,
    size: u64,
    batch_size: usize,
    source: &str,
) -> anyhow::Result<(ImportCounts, f64)> {
    let started = Instant::now();
    let mut progress = Progress::new(size, Unit::Bytes);
    let mut shown = 0;
    loop {
        let (batch, bytes) = reader.next_batch(batch_size)?;
        if batch.is_empty() {
            break;
        }
        for error in importer.import(batch).await? {
            shown += 1;
            if shown <= SHOWN {
                progress.println(format!("line {}: {}", error.line, error.reason));
            } else if shown == SHOWN + 1 {
                progress.println("… further refused lines are only counted".to_owned());
            }
        }
        progress.advance(bytes);
        progress.set_message(format!("{} accounts in", importer.counts().imported));
    }
    progress.finish();
    let counts = importer.finish(source).await?;
    Ok((counts, started.elapsed().as_secs_f64()))
}

fn summarise(counts: &ImportCounts, dry_run: bool, elapsed: f64) {
    let verb = if dry_run { "would import" } else { "imported" };
    let formats: Vec<String> = counts.formats.iter().map(|(scheme, n)| format!("{scheme} {n}")).collect();
    println!(
        "{}{verb} {}, updated {}, skipped {} already there, refused {} of {} lines in {elapsed:.1} s{}",
        if dry_run { "dry run: " } else { "" },
        counts.imported,
        counts.updated,
        counts.skipped,
        counts.refused,
        counts.lines,
        if formats.is_empty() { String::new() } else { format!(" (password hashes: {})", formats.join(", ")) }
    );
}

fn format_of(path: &Path) -> anyhow::Result<FileFormat> {
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("jsonl" | "ndjson" | "json") => Ok(FileFormat::Jsonl),
        Some("csv") => Ok(FileFormat::Csv),
        _ => bail!(
            "cannot tell the format of {} from its extension: pass --format jsonl or --format csv",
            path.display()
        ),
    }
}

fn firebase(args: &ImportArgs) -> anyhow::Result<Option<FirebaseParams>> {
    let (Some(key), Some(separator), Some(rounds), Some(mem_cost)) =
        (&args.firebase_signer_key, &args.firebase_salt_separator, args.firebase_rounds, args.firebase_mem_cost)
    else {
        return Ok(None);
    };
    FirebaseParams::new(key, separator, rounds, mem_cost).map(Some).map_err(|e| anyhow::anyhow!("--firebase-*: {e}"))
}

pub async fn export(config: &Config, args: ExportArgs) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose(), 1).await?;
    store.migrate().await?;
    let outcome = write_export(&store, &args).await;
    store.close().await;
    // A reader that stopped early (`| head`) is not a failure of the export.
    let written = match outcome {
        Err(error) if is_broken_pipe(&error) => return Ok(()),
        other => other?,
    };
    eprintln!(
        "exported {written} accounts{}",
        if args.with_password_hashes { " with their password hashes" } else { "" }
    );
    Ok(())
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    let kind = error
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
        .or_else(|| error.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind));
    kind == Some(std::io::ErrorKind::BrokenPipe)
}

async fn write_export(store: &Store, args: &ExportArgs) -> anyhow::Result<u64> {
    let mut out: Box<dyn std::io::Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(open_private(path)?)),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let mut conn = store.conn().await?;
    let total = user_list::count(&mut conn, &UserFilter::default()).await?;
    let mut progress = Progress::new(u64::try_from(total).unwrap_or(0), Unit::Items("accounts"));
    let (mut after, mut written) = (None, 0_u64);
    loop {
        let page = user_import::page_by_id(&mut conn, after, EXPORT_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for user in &page {
            serde_json::to_writer(&mut out, &UserRecord::exported(user, args.with_password_hashes))?;
            out.write_all(b"\n")?;
        }
        written += page.len() as u64;
        progress.advance(page.len() as u64);
    }
    out.flush()?;
    progress.finish();
    Ok(written)
}
