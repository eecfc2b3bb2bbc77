//! Command-line flags and environment variables.

use std::net::IpAddr;
use std::time::Duration;

pub const USAGE: &str = "\
slpocapp: the sample service of promlite, scaled by a Kubernetes HPA on its request rate.

Serves GET / (counted in slpocapp_request_operations_total and timed in
slpocapp_request_duration_seconds), /metrics, /healthz and /readyz.

Usage: slpocapp [options]

Options (each also read from the environment variable shown; a flag wins):
  --port <n>           port to listen on, 0 for any free one (PORT, default 8000)
  --bind <ip>          address to listen on (BIND_ADDRESS, default 0.0.0.0)
  --work-ms <ms>       simulated work per request to /, 0 to 10000 (WORK_MS, default 0)
  --workers <n>        threads answering requests, 1 to 1024 (WORKERS, default 32)
  --max-connections <n>
                       connections open at once, 1 to 1000000 (MAX_CONNECTIONS,
                       default 4096 or the open-files limit less 64)
  --native-histogram   count the request duration in native buckets as well
                       (schema 3, at most 160), exposed over protobuf to a
                       Prometheus run with --enable-feature=native-histograms;
                       the text formats are unchanged (NATIVE_HISTOGRAM=1,
                       default off)
  -h, --help           show this help
  -V, --version        show the version

The pod is POD_NAME, else the host name; the namespace is POD_NAMESPACE, else the
service account's namespace file, else \"default\". SIGTERM or SIGINT stops it
gracefully (in-flight requests are answered) within a second.
";

#[derive(Debug, PartialEq)]
pub struct Config {
    pub port: u16,
    pub bind: IpAddr,
    pub work: Duration,
    pub workers: usize,
    pub max_connections: Option<usize>,
    pub native_histogram: bool,
}

#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Config),
    Help,
    Version,
}

/// Parses flags (`args`, without the program name) over the environment (`env`).
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, String> {
    let mut port = env("PORT");
    let mut bind = env("BIND_ADDRESS");
    let mut work = env("WORK_MS");
    let mut workers = env("WORKERS");
    let mut max_connections = env("MAX_CONNECTIONS");
    let mut native_histogram = env("NATIVE_HISTOGRAM");
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let slot = match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--native-histogram" if inline.is_none() => {
                native_histogram = Some("1".to_owned());
                continue;
            }
            "--port" => &mut port,
            "--bind" => &mut bind,
            "--work-ms" => &mut work,
            "--workers" => &mut workers,
            "--max-connections" => &mut max_connections,
            other => return Err(format!("unknown option {other:?} (see --help)")),
        };
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("{flag} needs a value")),
        };
        *slot = Some(value);
    }
    Ok(Command::Run(Config {
        port: number("port", port, 8000, 0, 65535)? as u16,
        bind: match bind {
            None => IpAddr::from([0, 0, 0, 0]),
            Some(text) => text
                .parse()
                .map_err(|_| format!("invalid bind address {text:?}: expected an IP address"))?,
        },
        work: Duration::from_millis(number("work-ms", work, 0, 0, 10_000)?),
        workers: number("workers", workers, 32, 1, 1024)? as usize,
        max_connections: match max_connections {
            None => None,
            some => Some(number("max-connections", some, 0, 1, 1_000_000)? as usize),
        },
        native_histogram: match native_histogram.as_deref().map(str::trim) {
            None | Some("" | "0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(format!(
                    "invalid NATIVE_HISTOGRAM {other:?}: expected 1, true, 0 or false"
                ));
            }
        },
    }))
}

fn number(
    name: &str,
    value: Option<String>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, String> {
    let Some(text) = value else {
        return Ok(default);
    };
    match text.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid {name} {text:?}: expected a whole number from {min} to {max}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(args.iter().map(|s| s.to_string()), |key| {
            env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults() {
        assert_eq!(
            run(&[], &[]),
            Ok(Command::Run(Config {
                port: 8000,
                bind: IpAddr::from([0, 0, 0, 0]),
                work: Duration::ZERO,
                workers: 32,
                max_connections: None,
                native_histogram: false,
            }))
        );
    }

    #[test]
    fn the_native_histogram_is_off_unless_asked_for() {
        let native = |args: &[&str], env: &[(&str, &str)]| match run(args, env) {
            Ok(Command::Run(c)) => Ok(c.native_histogram),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(native(&[], &[]), Ok(false));
        assert_eq!(native(&["--native-histogram"], &[]), Ok(true));
        assert_eq!(native(&[], &[("NATIVE_HISTOGRAM", "1")]), Ok(true));
        assert_eq!(native(&[], &[("NATIVE_HISTOGRAM", "false")]), Ok(false));
        assert_eq!(
            native(&["--native-histogram"], &[("NATIVE_HISTOGRAM", "0")]),
            Ok(true),
            "a flag wins"
        );
        assert!(native(&[], &[("NATIVE_HISTOGRAM", "yes please")]).is_err());
        assert!(
            native(&["--native-histogram=1"], &[]).is_err(),
            "it takes no value"
        );
    }

    #[test]
    fn flags_win_over_the_environment() {
        let Ok(Command::Run(c)) = run(
            &["--port", "9000", "--bind=127.0.0.1", "--work-ms", "25"],
            &[("PORT", "7000"), ("WORKERS", "4"), ("WORK_MS", "1")],
        ) else {
            panic!("parse failed")
        };
        assert_eq!(c.port, 9000);
        assert_eq!(c.bind, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.work, Duration::from_millis(25));
        assert_eq!(c.workers, 4);
    }

    #[test]
    fn help_and_version() {
        assert_eq!(run(&["--help"], &[]), Ok(Command::Help));
        assert_eq!(run(&["-V"], &[]), Ok(Command::Version));
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        for (args, env) in [
            (&["--port", "65536"][..], &[][..]),
            (&["--port", "eighty"], &[]),
            (&[], &[("PORT", "-1")]),
            (&["--bind", "localhost"], &[]),
            (&["--work-ms", "10001"], &[]),
            (&["--workers", "0"], &[]),
            (&["--max-connections", "0"], &[]),
            (&[], &[("MAX_CONNECTIONS", "many")]),
            (&["--port"], &[]),
            (&["--verbose"], &[]),
        ] {
            let err = run(args, env).unwrap_err();
            assert!(!err.contains('\n') && !err.is_empty(), "{err:?}");
        }
    }
}
