//! The machine's own ceilings, measured in the same run: what the figures are compared with.

use std::time::{Duration, Instant};

use secrecy::SecretString;

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
