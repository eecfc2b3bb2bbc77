//! slpocapp: the sample service of promlite, the Rust successor of the seed
//! tutorial's aiohttp app. `GET /` answers with the pod's name and the time, and
//! is counted and timed; `/metrics` exposes the counts for Prometheus, whose
//! adapter turns their rate into the custom metric an HPA scales on.
#![deny(unsafe_code)]

mod config;
mod signals;

use config::{Command, Config, USAGE};
use promlite::{
    Answer, Counter, Exporter, Histogram, Method, NativeConfig, NativeHistogram, Request,
};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where Kubernetes mounts the pod's namespace (when a service account token is mounted).
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// How long a graceful stop may take before the process exits anyway.
const STOP_DEADLINE: Duration = Duration::from_millis(900);

fn main() -> ExitCode {
    // First, before any thread exists: every thread inherits the blocked mask.
    let termination = match signals::Termination::block() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("slpocapp: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let Ok(args) = args else {
        eprintln!("slpocapp: an argument is not valid UTF-8 (see --help)");
        return ExitCode::from(2);
    };
    let config = match config::parse(args, |key| std::env::var(key).ok()) {
        Ok(Command::Run(config)) => config,
        // Written without `print!`, which panics when stdout is closed.
        Ok(Command::Help) => {
            let _ = std::io::stdout().write_all(USAGE.as_bytes());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            let _ = writeln!(std::io::stdout(), "slpocapp {VERSION}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("slpocapp: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&config, &termination) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("slpocapp: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &Config, termination: &signals::Termination) -> Result<ExitCode, String> {
    raise_fd_limit();
    let pod = pod_name();
    let namespace = namespace();
    let app = App::new(&pod, &namespace, config.work, config.native_histogram)
        .map_err(|e| e.to_string())?;
    let addr = (config.bind, config.port);
    let mut exporter = Exporter::default_registry()
        .workers(config.workers)
        .routes(move |request, body| app.route(request, body));
    if let Some(max) = config.max_connections {
        exporter = exporter.max_connections(max);
    }
    let server = exporter
        .serve(addr)
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.bind, config.port))?;
    eprintln!(
        "slpocapp {VERSION} listening on {} (pod {pod}, namespace {namespace}, work {} ms, {} workers, at most {} connections{})",
        server.local_addr(),
        config.work.as_millis(),
        config.workers,
        server.max_connections(),
        if config.native_histogram {
            ", native histogram"
        } else {
            ""
        }
    );
    loop {
        if let Some(signal) = termination.wait(Duration::from_millis(200)) {
            let started = Instant::now();
            let stopped = server.shutdown(STOP_DEADLINE);
            eprintln!(
                "slpocapp: {} received; stopped in {} ms after {} answers{}{}",
                signals::name(signal),
                started.elapsed().as_millis(),
                stopped.answers,
                match server.accept_errors() {
                    0 => String::new(),
                    n => format!(", {n} accept() errors"),
                },
                match stopped.abandoned_workers {
                    0 => String::new(),
                    n => format!(" ({n} workers still busy were left)"),
                }
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// The `/` route and its two metrics, with this pod's labels looked up once.
struct App {
    pod: String,
    requests: Counter,
    duration: RequestDuration,
    work: Duration,
}

/// The seed's buckets of the request duration, in seconds.
const DURATION_BUCKETS: [f64; 5] = [1.0, 2.0, 5.0, 6.0, 10.0];

/// The request duration: the seed's classic histogram, or (`--native-histogram`)
/// one with native buckets as well, under the same name and classic buckets.
enum RequestDuration {
    Classic(Histogram),
    Native(NativeHistogram),
}

impl RequestDuration {
    fn observe(&self, seconds: f64) {
        match self {
            RequestDuration::Classic(h) => h.observe(seconds),
            RequestDuration::Native(h) => h.observe(seconds),
        }
    }
}

impl App {
    fn new(
        pod: &str,
        namespace: &str,
        work: Duration,
        native: bool,
    ) -> Result<App, promlite::Error> {
        let registry = promlite::default_registry();
        registry.register_process_metrics()?;
        let labels = [namespace, pod];
        let requests = registry
            .counter_family(
                "slpocapp_request_operations_total",
                "The total number of processed requests",
                &["namespace", "pod"],
            )?
            .with_labels(&labels)?;
        let (name, help) = (
            "slpocapp_request_duration_seconds",
            "Histogram for the duration in seconds.",
        );
        let label_names = ["namespace", "pod"];
        let duration = if native {
            let config = NativeConfig {
                classic_buckets: DURATION_BUCKETS.to_vec(),
                ..NativeConfig::default()
            };
            let family = registry.native_histogram_family(name, help, &label_names, &config)?;
            RequestDuration::Native(family.with_labels(&labels)?)
        } else {
            let family = registry.histogram_family(name, help, &label_names, &DURATION_BUCKETS)?;
            RequestDuration::Classic(family.with_labels(&labels)?)
        };
        Ok(App {
            pod: pod.to_owned(),
            requests,
            duration,
            work,
        })
    }

    /// `GET /`: the seed's answer, `{"Respuesta de:": "<pod> processing time: <unix time>"}`.
    fn route(&self, request: &Request<'_>, body: &mut Vec<u8>) -> Option<Answer> {
        if request.path() != "/" {
            return None;
        }
        if !matches!(request.method(), Method::Get | Method::Head) {
            body.extend_from_slice(b"method not allowed\n");
            return Some(Answer::method_not_allowed("GET, HEAD"));
        }
        let started = Instant::now();
        if !self.work.is_zero() {
            std::thread::sleep(self.work);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        body.extend_from_slice(b"{\"Respuesta de:\": \"");
        json_escape(body, &self.pod);
        let _ = write!(
            body,
            " processing time: {}.{:06}\"}}",
            now.as_secs(),
            now.subsec_micros()
        );
        self.requests.inc();
        self.duration.observe(started.elapsed().as_secs_f64());
        Some(Answer::ok("application/json"))
    }
}

/// Appends `s` escaped for a JSON string (the pod name comes from the environment).
fn json_escape(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

/// `POD_NAME`, else the host name (which Kubernetes sets to the pod's name).
fn pod_name() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
}

/// `POD_NAMESPACE`, else the service account's namespace file, else `default`.
fn namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string(NAMESPACE_FILE).ok())
        .map(|ns| ns.trim().to_owned())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// Raises the soft limit on open files to the hard limit: each connection is a
/// file descriptor, and the exporter's connection cap follows the soft limit.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escape_keeps_the_string_valid() {
        let mut out = Vec::new();
        json_escape(&mut out, "pod-\"a\\b\"\n\u{1}ñ");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "pod-\\\"a\\\\b\\\"\\u000a\\u0001ñ"
        );
    }
}
