//! Process metrics from Linux `/proc` (and `getrlimit`), under the names the Go and
//! Python clients use.

use crate::{Error, Registry};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

impl Registry {
    /// Registers the standard process metrics, read from `/proc` at each scrape:
    /// `process_cpu_seconds_total`, `process_resident_memory_bytes`,
    /// `process_virtual_memory_bytes`, `process_start_time_seconds`,
    /// `process_open_fds` and `process_max_fds`.
    ///
    /// Where `/proc` cannot be read (another OS, a sandbox) the samples are left out
    /// of the scrape; the families are still declared.
    ///
    /// ```
    /// let registry = promlite::Registry::new();
    /// registry.register_process_metrics().unwrap();
    /// let mut buf = Vec::new();
    /// promlite::encode_text(&registry, &mut buf);
    /// # #[cfg(target_os = "linux")]
    /// assert!(String::from_utf8(buf).unwrap().contains("\nprocess_open_fds "));
    /// ```
    pub fn register_process_metrics(&self) -> Result<(), Error> {
        self.counter_collector(
            "process_cpu_seconds_total",
            "CPU time used by the process, user and system together, in seconds.",
            &[],
            |s| {
                if let Some(stat) = Stat::recent() {
                    let _ = s.push(
                        &[],
                        (stat.utime + stat.stime) as f64 / AUXV.ticks_per_second,
                    );
                }
            },
        )?;
        self.gauge_collector(
            "process_resident_memory_bytes",
            "Bytes of memory the process has resident (RSS).",
            &[],
            |s| {
                if let Some(stat) = Stat::recent() {
                    let _ = s.push(&[], stat.rss_pages as f64 * AUXV.page_size);
                }
            },
        )?;
        self.gauge_collector(
            "process_virtual_memory_bytes",
            "Bytes of virtual address space the process uses.",
            &[],
            |s| {
                if let Some(stat) = Stat::recent() {
                    let _ = s.push(&[], stat.vsize as f64);
                }
            },
        )?;
        self.gauge_collector(
            "process_start_time_seconds",
            "When the process started, in seconds since the Unix epoch.",
            &[],
            |s| {
                if let Some(start) = *START_TIME {
                    let _ = s.push(&[], start);
                }
            },
        )?;
        self.gauge_collector(
            "process_open_fds",
            "File descriptors the process has open.",
            &[],
            |s| {
                if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
                    let _ = s.push(&[], dir.count() as f64);
                }
            },
        )?;
        self.gauge_collector(
            "process_max_fds",
            "The most file descriptors the process may open (its soft limit).",
            &[],
            |s| {
                if let Some(max) = max_fds() {
                    let _ = s.push(&[], max);
                }
            },
        )
    }
}

/// The fields of `/proc/self/stat` that the metrics need.
#[derive(Clone, Copy)]
struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

/// The last read of `/proc/self/stat`, and when it was made.
static LAST_STAT: Mutex<Option<(Instant, Stat)>> = Mutex::new(None);

/// Three metrics come from `/proc/self/stat`: within one scrape they share one
/// read (a read less than a millisecond old), which halves the cost of a scrape.
const STAT_REUSE: Duration = Duration::from_millis(1);

impl Stat {
    fn recent() -> Option<Stat> {
        let mut last = LAST_STAT.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, stat)) = *last {
            if at.elapsed() < STAT_REUSE {
                return Some(stat);
            }
        }
        let stat = Stat::read()?;
        *last = Some((Instant::now(), stat));
        Some(stat)
    }

    fn read() -> Option<Stat> {
        let mut buf = [0u8; 1024];
        let len = read_small("/proc/self/stat", &mut buf)?;
        Stat::parse(std::str::from_utf8(&buf[..len]).ok()?)
    }

    fn parse(text: &str) -> Option<Stat> {
        // The command name, in parentheses, may hold spaces and parentheses itself:
        // the fields that follow start after the last ')'. The first of them is
        // field 3 of proc(5), so field N is at index N - 3.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

/// Reads a small file into `buf` without allocating; `None` if it cannot be read
/// or does not fit.
fn read_small(path: &str, buf: &mut [u8]) -> Option<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut len = 0;
    loop {
        match file.read(&mut buf[len..]) {
            Ok(0) => return Some(len),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
        if len == buf.len() {
            return None;
        }
    }
}

/// What the kernel told the process at start: clock ticks per second and page size.
struct Auxv {
    ticks_per_second: f64,
    page_size: f64,
}

static AUXV: LazyLock<Auxv> = LazyLock::new(|| {
    // /proc/self/auxv is a list of (type, value) machine words; AT_PAGESZ is 6
    // and AT_CLKTCK is 17. Linux fixes both at 4096 and 100 on common machines.
    let mut auxv = Auxv {
        ticks_per_second: 100.0,
        page_size: 4096.0,
    };
    let Ok(bytes) = std::fs::read("/proc/self/auxv") else {
        return auxv;
    };
    const WORD: usize = std::mem::size_of::<usize>();
    for pair in bytes.chunks_exact(2 * WORD) {
        let word = |i: usize| {
            let mut w = [0u8; WORD];
            w.copy_from_slice(&pair[i * WORD..(i + 1) * WORD]);
            usize::from_ne_bytes(w)
        };
        match (word(0), word(1)) {
            (6, v) if v > 0 => auxv.page_size = v as f64,
            (17, v) if v > 0 => auxv.ticks_per_second = v as f64,
            _ => {}
        }
    }
    auxv
});

/// The start time never changes: boot time plus the start tick of the process.
static START_TIME: LazyLock<Option<f64>> = LazyLock::new(|| {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let boot: f64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot + Stat::read()?.start_ticks as f64 / AUXV.ticks_per_second)
});

/// The soft limit on open files, from `getrlimit` (no file to read and parse).
#[cfg(unix)]
fn max_fds() -> Option<f64> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    Some(limit.current.map_or(f64::INFINITY, |n| n as f64))
}

/// No such limit to read on Windows: the sample is left out.
#[cfg(not(unix))]
fn max_fds() -> Option<f64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 3 0 123456 10485760 512 18446744073709551615";
        let stat = Stat::parse(line).unwrap();
        assert_eq!((stat.utime, stat.stime), (250, 75));
        assert_eq!(stat.start_ticks, 123456);
        assert_eq!(stat.vsize, 10485760);
        assert_eq!(stat.rss_pages, 512);
        assert!(Stat::parse("garbage").is_none());
        assert!(Stat::parse("1 (x) S 1 2").is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn live_values_are_plausible() {
        let stat = Stat::read().unwrap();
        assert!(stat.rss_pages > 0);
        assert!(stat.vsize as f64 >= stat.rss_pages as f64 * AUXV.page_size);
        let start = START_TIME.unwrap();
        let now = crate::metrics::unix_now();
        assert!(start <= now && start > now - 86_400.0 * 365.0, "{start}");
        assert!(max_fds().unwrap() >= 64.0);
        assert!(AUXV.page_size >= 4096.0);
        assert!(AUXV.ticks_per_second >= 100.0);
    }
}
