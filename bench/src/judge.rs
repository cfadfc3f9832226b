//! The verdicts: each target of the harness, PASS or FAIL, from the figures of the run.

use crate::report::Report;

/// Sets the verdicts: the targets of the performance issue, each where its figures were taken.
pub fn judge(report: &mut Report, hash_concurrency: usize) {
    let share = |report: &Report, name: &str| report.scenario(name).and_then(|s| s.share_of_ceiling);
    if let Some(v) = share(report, "me") {
        let ceiling = report.scenario("me").map_or("?", |s| s.ceiling_name.as_str()).to_owned();
        report.judge(&format!("/v1/me ÷ {ceiling}, same run ≥ 0.60"), format!("{v:.2}"), v >= 0.6);
    }
    for name in ["login", "register"] {
        if let Some(v) = share(report, name) {
            report.judge(&format!("{name} ÷ hash ceiling ≥ 0.90"), format!("{v:.2}"), v >= 0.9);
        }
    }
    if let Some((m, share)) = report.scenario("refresh").map(|s| (s.measured.clone(), s.share_of_ceiling)) {
        if report.backend == "sqlite" {
            report.judge(
                "refresh on SQLite: ≥ 4,000 req/s, p99 ≤ 25 ms, max ≤ 100 ms, no errors",
                format!(
                    "{:.0} req/s, p99 {:.1} ms, max {:.1} ms, {} errors",
                    m.per_second,
                    m.p99_ms,
                    m.max_ms,
                    m.error_count()
                ),
                m.per_second >= 4000.0 && m.p99_ms <= 25.0 && m.max_ms <= 100.0 && m.error_count() == 0,
            );
        }
        if let (Some(v), "postgres") = (share, report.backend.as_str()) {
            report.judge("refresh on PostgreSQL ÷ pgbench of its statements ≥ 0.80", format!("{v:.2}"), v >= 0.8);
        }
    }
    if let Some(p99) = report.scenario("mixed: me").map(|s| s.measured.p99_ms) {
        let mixed = report.scenarios.iter().filter(|s| s.name.starts_with("mixed"));
        let errors: u64 = mixed.map(|s| s.measured.error_count()).sum();
        report.judge(
            "mixed at a fixed rate: p99 of /v1/me ≤ 10 ms, no errors",
            format!("{p99:.2} ms, {errors} errors"),
            p99 <= 10.0 && errors == 0,
        );
    }
    let p99 =
        |report: &Report, name: &str| report.scenario(name).map(|s| (s.measured.p99_ms, s.measured.error_count()));
    let flood =
        (p99(report, "me alone (flood ref.)"), p99(report, "me under login flood"), p99(report, "login (the flood)"));
    if let (Some((alone, _)), Some((under, errors)), Some((_, flood_errors))) = flood {
        let ratio = under / alone.max(0.001);
        report.judge(
            "login-flood: p99 of /v1/me ≤ 3 × alone, no errors",
            format!("{under:.2} ms vs {alone:.2} ms ({ratio:.1} ×), {} errors", errors + flood_errors),
            ratio <= 3.0 && errors + flood_errors == 0,
        );
    }
    let limited = (p99(report, "me under login flood, limiter on"), report.scenario("login flood, limiter on"));
    if let (Some((alone, _)), Some((under, errors)), Some(flood)) = (flood.0, limited.0, limited.1) {
        let ratio = under / alone.max(0.001);
        let flood_errors = flood.measured.error_count_except(429);
        report.judge(
            "login-flood, limiter on: p99 of /v1/me ≤ 3 × alone, no errors but the flood's 429s",
            format!("{under:.2} ms vs {alone:.2} ms ({ratio:.1} ×), {} errors", errors + flood_errors),
            ratio <= 3.0 && errors + flood_errors == 0,
        );
    }
    if let Some((warm, end)) = report.mixed_rss_mib {
        let growth = (end - warm) / warm.max(0.001) * 100.0;
        report.judge(
            "mixed: RSS growth after warm-up ≤ 10 %",
            format!("{warm:.1} → {end:.1} MiB ({growth:+.1} %)"),
            growth <= 10.0,
        );
    }
    if let Some(idle) = report.idle_rss_mib {
        report.judge("idle RSS ≤ 20 MiB", format!("{idle:.1} MiB"), idle <= 20.0);
    }
    if let Some(peak) = report.peak_rss_mib {
        let budget = 64.0 + hash_concurrency as f64 * 19.0;
        report.judge(
            &format!("peak RSS ≤ {budget:.0} MiB (64 + {hash_concurrency} × 19)"),
            format!("{peak:.1} MiB"),
            peak <= budget,
        );
    }
    if let Some(ms) = report.startup_ms {
        report.judge("start-up to /readyz ≤ 200 ms", format!("{ms:.0} ms"), ms <= 200.0);
    }
}
