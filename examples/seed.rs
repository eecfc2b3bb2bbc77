//! The seed tutorial's two metrics after one request, printed in both formats.
//!
//! `cargo run --example seed`

use promlite::{Format, Registry};

fn main() -> Result<(), promlite::Error> {
    let registry = Registry::new();
    let requests = registry.counter_family(
        "slpocapp_request_operations_total",
        "The total number of processed requests",
        &["namespace", "pod"],
    )?;
    let duration = registry.histogram_family(
        "slpocapp_request_duration_seconds",
        "Histogram for the duration in seconds.",
        &["namespace", "pod"],
        &[1.0, 2.0, 5.0, 6.0, 10.0],
    )?;
    requests.with_labels(&["default", "laptop-jaime"])?.inc();
    duration
        .with_labels(&["default", "laptop-jaime"])?
        .observe(0.0011820793151855469);

    for format in [Format::Text, Format::OpenMetrics] {
        let mut buf = Vec::new();
        promlite::encode(&registry, format, &mut buf);
        println!("--- {}", format.content_type());
        print!("{}", String::from_utf8_lossy(&buf));
    }
    Ok(())
}
