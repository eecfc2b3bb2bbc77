//! `respond_metrics` for programs that run their own tiny_http server (the
//! `tiny_http` feature): `cargo test --features tiny_http --test tiny_http`.
#![cfg(feature = "tiny_http")]

mod common;

use common::http::Client;
use promlite::Format;
use std::time::Duration;

#[test]
fn respond_metrics_answers_a_tiny_http_request_in_the_asked_format() {
    let registry = common::seed_registry();
    let expected_text = common::encode(&registry, Format::Text);
    let expected_om = common::encode(&registry, Format::OpenMetrics);
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    let serving = std::thread::spawn(move || {
        let (mut body, mut out) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let request = server.recv().unwrap();
            promlite::respond_metrics(request, &registry, &mut body, &mut out).unwrap();
        }
    });
    let mut client = Client::new(addr, Duration::from_secs(5));
    let text = client.get("/metrics").unwrap();
    assert_eq!(text.status, 200);
    assert_eq!(
        text.header("content-type"),
        Some(Format::Text.content_type())
    );
    assert_eq!(text.text(), expected_text);
    let om = client
        .request(
            "GET",
            "/metrics",
            &[("Accept", "application/openmetrics-text; version=1.0.0")],
        )
        .unwrap();
    assert_eq!(
        om.header("content-type"),
        Some(Format::OpenMetrics.content_type())
    );
    assert_eq!(om.text(), expected_om);
    let head = client.request("HEAD", "/metrics", &[]).unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(expected_text.len().to_string().as_str())
    );
    serving.join().unwrap();
}
