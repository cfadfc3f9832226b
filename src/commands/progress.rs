//! Progress of long command-line work: a bar on a terminal, a line every tenth of the way
//! otherwise (a log file or CI output gets ten lines, not a redrawn bar).

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressStyle};

/// What the work counts.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// Things, named in the plural (`wallets`).
    Items(&'static str),
    /// Bytes of a file read.
    Bytes,
}

/// A bar on a terminal, a line every tenth of the way elsewhere.
pub enum Progress {
    Bar(ProgressBar),
    Lines { unit: Unit, total: u64, done: u64, next: u64 },
}

impl Progress {
    pub fn new(total: u64, unit: Unit) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Lines { unit, total, done: 0, next: total / 10 };
        }
        let bar = ProgressBar::new(total);
        let template = match unit {
            Unit::Items(name) => format!("{{bar:40}} {{pos}}/{{len}} {name} ({{per_sec}}, {{eta}} left)"),
            Unit::Bytes => "{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left) {msg}".to_owned(),
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        Self::Bar(bar)
    }

    /// Moves on by `n`.
    pub fn advance(&mut self, n: u64) {
        match self {
            Self::Bar(bar) => bar.inc(n),
            Self::Lines { unit, total, done, next } => {
                *done += n;
                if *done >= *next && *total > 0 {
                    match unit {
                        Unit::Items(name) => eprintln!("{done} of {total} {name}"),
                        Unit::Bytes => eprintln!("read {}% of the file", *done * 100 / *total),
                    }
                    *next = *done + (*total / 10).max(1);
                }
            }
        }
    }

    /// A short status beside the bar (only on a terminal).
    pub fn set_message(&self, message: String) {
        if let Self::Bar(bar) = self {
            bar.set_message(message);
        }
    }

    /// Prints a line above the bar.
    pub fn println(&self, line: String) {
        match self {
            Self::Bar(bar) => bar.println(line),
            Self::Lines { .. } => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
