//! The results: a table on stdout, PASS/FAIL lines against the targets, and JSON.

use serde::Serialize;

use crate::load::Measured;

#[derive(Serialize, Default)]
pub struct Report {
    pub machine: String,
    pub backend: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub hash_concurrency: usize,
    /// What sent the HTTP load of the throughput scenarios: `wrk`, or `in-process` without it.
    pub driver: String,
    pub hash_ceiling_per_second: Option<f64>,
    /// Figures set beside the table: ratios to other ceilings, rates chosen.
    pub notes: Vec<String>,
    pub scenarios: Vec<Scenario>,
    pub idle_rss_mib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// The server's RSS when the `mixed` scenario's warm-up ended and when it finished (a soak:
    /// `--scenario mixed --warmup 60 --seconds 600`).
    pub mixed_rss_mib: Option<(f64, f64)>,
    pub startup_ms: Option<f64>,
    pub verdicts: Vec<Verdict>,
}

#[derive(Serialize)]
pub struct Scenario {
    pub name: String,
    #[serde(flatten)]
    pub measured: Measured,
    /// The ceiling this scenario is compared with, and its share of it.
    pub ceiling_name: String,
    pub ceiling: Option<f64>,
    pub share_of_ceiling: Option<f64>,
}

#[derive(Serialize)]
pub struct Verdict {
    pub target: String,
    pub measured: String,
    pub pass: bool,
}

impl Report {
    /// A scenario's figures, compared with nothing.
    pub fn add(&mut self, name: &str, measured: Measured) {
        self.add_compared(name, measured, ("", None), None);
    }

    /// A scenario's figures with a ratio taken from alternating rounds (see `ceilings`).
    pub fn add_compared(&mut self, name: &str, measured: Measured, ceiling: (&str, Option<f64>), share: Option<f64>) {
        let (ceiling_name, ceiling) = (ceiling.0.to_owned(), ceiling.1);
        self.scenarios.push(Scenario {
            name: name.to_owned(),
            measured,
            ceiling_name,
            ceiling,
            share_of_ceiling: share,
        });
    }

    pub fn judge(&mut self, target: &str, measured: String, pass: bool) {
        self.verdicts.push(Verdict { target: target.to_owned(), measured, pass });
    }

    pub fn scenario(&self, name: &str) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    pub fn print(&self) {
        println!(
            "\ntessera benchmark — {} — {} — c={} for {:.0} s",
            self.machine, self.backend, self.concurrency, self.seconds
        );
        println!("HTTP load from: {}", self.driver);
        if let Some(h) = self.hash_ceiling_per_second {
            println!("hash ceiling (Argon2id m=19 MiB t=2 on {} threads): {h:.1} hashes/s", self.hash_concurrency);
        }
        println!(
            "\n{:<34} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "scenario", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "ratio"
        );
        for s in &self.scenarios {
            let m = &s.measured;
            let share = s.share_of_ceiling.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
            println!(
                "{:<34} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>9}",
                s.name,
                m.per_second,
                m.p50_ms,
                m.p90_ms,
                m.p99_ms,
                m.max_ms,
                m.error_count(),
                share
            );
        }
        for note in &self.notes {
            println!("{note}");
        }
        if let (Some(idle), Some(peak)) = (self.idle_rss_mib, self.peak_rss_mib) {
            println!("\nmemory: idle RSS {idle:.1} MiB, peak RSS {peak:.1} MiB");
        }
        if let Some(ms) = self.startup_ms {
            println!("start-up to /readyz on an existing database: {ms:.0} ms");
        }
        println!();
        for v in &self.verdicts {
            println!("{} {} — {}", if v.pass { "PASS" } else { "FAIL" }, v.target, v.measured);
        }
    }
}

/// The middle value (the mean of the middle two for an even count); 0 for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The run with the median rate (the upper middle one of an even count).
pub fn middle(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    runs.swap_remove(runs.len() / 2)
}
