//! Another service importing promlite: its own metrics, exposed in one call.
//!
//!     cargo run --example embed        # then: curl localhost:9100/metrics

use promlite::{Exporter, Registry};
use std::sync::Arc;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Arc::new(Registry::new());
    let jobs = registry.counter_family("worker_jobs_total", "Jobs processed.", &["queue"])?;
    let latency = registry.histogram(
        "worker_job_seconds",
        "Time per job.",
        &promlite::DEFAULT_BUCKETS,
    )?;
    let backlog = registry.gauge("worker_backlog", "Jobs waiting.")?;
    registry.register_process_metrics()?;

    let server = Exporter::new(Arc::clone(&registry)).serve("127.0.0.1:9100")?;
    println!("metrics on http://{}/metrics", server.local_addr());

    let emails = jobs.with_labels(&["emails"])?;
    for round in 0..600u32 {
        let _timer = latency.start_timer();
        std::thread::sleep(Duration::from_millis(50)); // the work
        emails.inc();
        backlog.set(f64::from(round % 7));
    }
    server.shutdown(Duration::from_secs(1));
    Ok(())
}
