//! The machine's own ceilings, measured in the same run: what the figures are compared with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::load::{Load, Measured, Request, drive};
use crate::outside::{BareHyper, Nginx};
use crate::report::{Report, median, middle};
use crate::scenarios::Get;
use crate::wrk;

/// Argon2id hashes per second with the server's parameters on `threads` threads, measured in
/// this process while the server is idle.
pub async fn hashes_per_second(threads: usize, duration: Duration) -> f64 {
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            tokio::task::spawn_blocking(move || {
                let password = SecretString::from("a password to hash for the ceiling");
                // One buffer per thread, as the server's hashing threads keep theirs.
                let mut memory = tessera::service::hashing::new_memory();
                let started = Instant::now();
                let mut done = 0_u64;
                while started.elapsed() < duration {
                    if tessera::service::hashing::hash_into(&password, &mut memory).is_ok() {
                        done += 1;
                    }
                }
                done as f64 / started.elapsed().as_secs_f64()
            })
        })
        .collect();
    let mut total = 0.0;
    for worker in workers {
        total += worker.await.unwrap_or(0.0);
    }
    total
}

/// One line describing the machine: cores and CPU model.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!("{cores} cores, {model}, {memory_gib:.0} GiB")
}

/// A warning when Linux's autogroup scheduling is on (Debian's default) and the database is a
/// server: started as a service, it is then scheduled as a group of its own against this run's
/// group (harness, wrk, tessera), and between bursts its share can fall so low that, with both
/// cores busy, it answers nothing for up to two seconds (seen with tcpdump on 2026-11-25: `/v1/me`
/// p99 0.5–0.8 s on PostgreSQL while the session cache refilled, 2–4 ms with autogroup off).
pub fn autogroup_warning(database_url: &str) -> Option<String> {
    let on = std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled").is_ok_and(|v| v.trim() == "1");
    (on && !database_url.starts_with("sqlite")).then(|| {
        "the kernel's autogroup scheduling is on (/proc/sys/kernel/sched_autogroup_enabled): the database server \
         competes as one group against this run's, so its latency can spike when both cores are busy"
            .to_owned()
    })
}

/// Connections for `/v1/me` and the HTTP ceilings: the issue's `wrk -t2 -c32`.
const HTTP_CONNECTIONS: usize = 32;

/// `GET /v1/me` beside nginx (when installed) and a bare hyper server, in alternating rounds
/// (nginx, hyper, tessera, nginx, …): each ratio is the median of the rounds' ratios, so a
/// noisy moment cannot make tessera look faster than its ceiling.
pub async fn me_beside_ceilings(
    report: &mut Report,
    client: &reqwest::Client,
    base: &str,
    token: &str,
    load: Load,
    rounds: usize,
) -> anyhow::Result<()> {
    let nginx = Nginx::start().await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hyper = BareHyper::start(cores)?;
    let load = Load { concurrency: HTTP_CONNECTIONS, ..load };
    let me = Get { url: format!("{base}/v1/me"), token: Some(token.to_owned()) };
    let mut runs: [Vec<Measured>; 3] = Default::default();
    for round in 0..rounds.max(1) {
        eprintln!("  /v1/me round {}…", round + 1);
        if let Some(nginx) = &nginx {
            runs[0].push(get(client, Get { url: format!("{}/", nginx.base), token: None }, load).await?);
        }
        runs[1].push(get(client, Get { url: format!("{}/", hyper.base), token: None }, load).await?);
        runs[2].push(get(client, Get { url: me.url.clone(), token: me.token.clone() }, load).await?);
    }
    let [nginx_runs, hyper_runs, me_runs] = runs;
    let ratio = |ceiling: &[Measured]| {
        (!ceiling.is_empty())
            .then(|| median(me_runs.iter().zip(ceiling).map(|(m, c)| m.per_second / c.per_second).collect()))
    };
    let (to_nginx, to_hyper) = (ratio(&nginx_runs), ratio(&hyper_runs));
    if let Some(v) = to_hyper {
        report.notes.push(format!("/v1/me ÷ bare hyper (same rounds): {v:.2}"));
    }
    if nginx.is_none() {
        report
            .notes
            .push("nginx is not installed (apt-get install nginx-light): /v1/me is compared with bare hyper".into());
    }
    let (name, share) = if to_nginx.is_some() { ("nginx", to_nginx) } else { ("bare hyper", to_hyper) };
    if !nginx_runs.is_empty() {
        report.add_compared("nginx return 200", middle(nginx_runs), ("", None), None);
    }
    report.add_compared("bare hyper", middle(hyper_runs), ("", None), None);
    let me = middle(me_runs);
    let ceiling =
        report.scenario(if name == "nginx" { "nginx return 200" } else { "bare hyper" }).map(|s| s.measured.per_second);
    report.add_compared("me", me, (name, ceiling), share);
    Ok(())
}

/// One `GET` run: by wrk when it is installed, else by the in-process driver.
async fn get(client: &reqwest::Client, request: Get, load: Load) -> anyhow::Result<Measured> {
    if wrk::available() {
        let headers = request.token.iter().map(|t| format!("Authorization: Bearer {t}")).collect();
        return wrk::Run { url: &request.url, headers, script: None }.measure(load).await;
    }
    Ok(drive(client, Arc::new(request), load).await)
}

/// A hashing scenario beside the hash ceiling, in alternating rounds (ceiling, scenario, …):
/// the run with the median rate, the median ceiling, and the median of the rounds' ratios.
pub async fn beside_hash_ceiling<R: Request>(
    client: &reqwest::Client,
    request: Arc<R>,
    load: Load,
    hash_concurrency: usize,
    rounds: usize,
) -> (Measured, f64, f64) {
    let mut runs = Vec::new();
    let mut ceilings = Vec::new();
    let mut ratios = Vec::new();
    for _ in 0..rounds.max(1) {
        let ceiling = hashes_per_second(hash_concurrency, load.duration.min(Duration::from_secs(5))).await;
        let run = drive(client, request.clone(), load).await;
        ratios.push(run.per_second / ceiling.max(0.001));
        ceilings.push(ceiling);
        runs.push(run);
    }
    (middle(runs), median(ceilings), median(ratios))
}
