//! One backend's delivery thread: encodes each window it is handed,
//! keeps it in a bounded spool, and sends the spool oldest first, with
//! retries and backoff while the backend is down. Says each kind of
//! trouble once, and counts what it sent, dropped and had refused.

use std::{
    collections::{BTreeSet, VecDeque},
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use super::{
    http::{Client, Outcome, Request},
    new_report,
    window::PushWindow,
};
use crate::{cli::Endpoint, meta::PushReport};

/// What the capture thread sends a delivery thread.
pub(crate) enum Message {
    Window(Arc<PushWindow>),
    /// Send what is left, until the deadline, and stop.
    Finish(Instant),
}

/// Retries start this soon after a failure and double up to the cap: an
/// outage is noticed within a window, and a long one costs a request per
/// cap.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(30);
/// Encoded windows held, all together, whatever the time they cover.
const SPOOL_BYTES: usize = 256 << 20;

/// A window's requests that are not yet delivered.
struct Pending {
    index: u64,
    requests: VecDeque<Request>,
    refused: bool,
}

impl Pending {
    fn bytes(&self) -> usize {
        self.requests.iter().map(|r| r.body.len()).sum()
    }
}

pub(crate) struct Delivery {
    endpoint: Endpoint,
    client: Client,
    encode: fn(&Endpoint, &PushWindow) -> Vec<Request>,
    spool: VecDeque<Pending>,
    /// Windows the spool holds at most.
    capacity: usize,
    report: PushReport,
    /// When the next attempt may be made, while the backend is failing.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The outage under way was said (and its drops).
    outage_said: bool,
    drop_said: bool,
    refusals_said: BTreeSet<u16>,
}

impl Delivery {
    pub(crate) fn new(
        endpoint: Endpoint,
        client: Client,
        encode: fn(&Endpoint, &PushWindow) -> Vec<Request>,
        capacity: usize,
    ) -> Delivery {
        let report = new_report(&endpoint);
        Delivery {
            endpoint,
            client,
            encode,
            spool: VecDeque::new(),
            capacity: capacity.max(1),
            report,
            retry_at: None,
            backoff: FIRST_RETRY,
            outage_said: false,
            drop_said: false,
            refusals_said: BTreeSet::new(),
        }
    }

    /// The thread's loop: until told to finish (or the capture is gone).
    pub(crate) fn run(mut self, messages: mpsc::Receiver<Message>) -> PushReport {
        loop {
            let message = match self.retry_at {
                None => messages
                    .recv()
                    .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(at) => messages.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match message {
                Ok(Message::Window(window)) => self.take(&window),
                Ok(Message::Finish(deadline)) => return self.flush(deadline),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return self.flush(Instant::now() + Duration::from_secs(5));
                }
            }
            if self.retry_at.is_none_or(|at| Instant::now() >= at) {
                self.send_spool(None);
            }
        }
    }

    fn take(&mut self, window: &PushWindow) {
        let requests: VecDeque<Request> = (self.encode)(&self.endpoint, window).into();
        if requests.is_empty() {
            return;
        }
        self.spool.push_back(Pending {
            index: window.index,
            requests,
            refused: false,
        });
        let mut bytes: usize = self.spool.iter().map(Pending::bytes).sum();
        while self.spool.len() > self.capacity || (bytes > SPOOL_BYTES && self.spool.len() > 1) {
            let Some(old) = self.spool.pop_front() else {
                break;
            };
            bytes -= old.bytes();
            self.report.windows_dropped += 1;
            if !self.drop_said {
                self.drop_said = true;
                eprintln!(
                    "bpfprof: warning: {}: down for longer than the spool holds (--push-spool): dropping the oldest windows, from window {} ({})",
                    self.endpoint.describe(),
                    old.index,
                    self.report.last_error.as_deref().unwrap_or("no answer")
                );
            }
        }
    }

    /// Sends the spool oldest first until it is empty, a request fails,
    /// or the deadline passes.
    fn send_spool(&mut self, deadline: Option<Instant>) {
        while let Some(pending) = self.spool.front_mut() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            let Some(request) = pending.requests.front() else {
                let done = self.spool.pop_front().expect("front exists");
                self.count_done(&done);
                continue;
            };
            match self.client.post(request) {
                Outcome::Delivered => {
                    pending.requests.pop_front();
                    self.recovered();
                }
                Outcome::Refused { status, first_line } => {
                    pending.requests.pop_front();
                    pending.refused = true;
                    self.recovered();
                    self.refused(status, first_line);
                }
                Outcome::Failed(error) => {
                    self.failed(error);
                    return;
                }
            }
        }
    }

    fn count_done(&mut self, done: &Pending) {
        if done.refused {
            self.report.windows_rejected += 1;
        } else {
            self.report.windows_sent += 1;
        }
    }

    fn recovered(&mut self) {
        if self.outage_said {
            eprintln!(
                "bpfprof: {}: delivering again; {} windows were waiting",
                self.endpoint.describe(),
                self.spool.len()
            );
        }
        self.retry_at = None;
        self.backoff = FIRST_RETRY;
        self.outage_said = false;
        self.drop_said = false;
    }

    fn refused(&mut self, status: u16, first_line: String) {
        let error = format!("HTTP {status}: {first_line}");
        if self.refusals_said.insert(status) {
            eprintln!(
                "bpfprof: warning: {}: {error}; the windows it refuses are not sent again",
                self.endpoint.describe()
            );
        }
        self.report.last_error = Some(error);
    }

    fn failed(&mut self, error: String) {
        if !self.outage_said {
            self.outage_said = true;
            eprintln!(
                "bpfprof: warning: {}: {error}; windows are kept and retried",
                self.endpoint.describe()
            );
        }
        self.report.last_error = Some(error);
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(LONGEST_RETRY);
    }

    /// At exit: one more pass over the spool, whatever the backoff, until
    /// the deadline; what is left is dropped, counted and said.
    fn flush(mut self, deadline: Instant) -> PushReport {
        self.send_spool(Some(deadline));
        let left = self.spool.len() as u64;
        if left > 0 {
            self.report.windows_dropped += left;
            eprintln!(
                "bpfprof: warning: {}: {left} windows not delivered at exit ({})",
                self.endpoint.describe(),
                self.report.last_error.as_deref().unwrap_or("out of time")
            );
        }
        self.report
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::TcpListener,
        time::SystemTime,
    };

    use super::*;
    use crate::cli::Backend;

    /// A window's request: a body naming the window, whatever it holds.
    fn one_request(endpoint: &Endpoint, window: &PushWindow) -> Vec<Request> {
        vec![Request {
            url: endpoint.url.to_string(),
            content_type: "application/octet-stream",
            headers: Vec::new(),
            body: window.index.to_le_bytes().to_vec(),
        }]
    }

    fn window(index: u64) -> PushWindow {
        PushWindow {
            index,
            start: SystemTime::now(),
            duration_ns: 1,
            host_name: "h".into(),
            labels: Vec::new(),
            freq_hz: 19,
            off_cpu: false,
            services: Vec::new(),
        }
    }

    fn delivery(port: u16, capacity: usize) -> Delivery {
        let url = format!("http://127.0.0.1:{port}");
        let endpoint = Endpoint::parse(Backend::Otlp, &url, None).unwrap();
        Delivery::new(
            endpoint,
            Client::new(&[], Vec::new(), None),
            one_request,
            capacity,
        )
    }

    /// A backend answering every request with `status`, on a thread.
    fn backend(status: &'static str, requests: usize) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let mut stream = stream.unwrap();
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head);
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: 6\r\nconnection: close\r\n\r\nno\nway"
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        port
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_the_exit_flush_counts_what_is_left() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut d = delivery(port, 2);
        for index in 0..5 {
            d.take(&window(index));
        }
        let held: Vec<u64> = d.spool.iter().map(|p| p.index).collect();
        assert_eq!(held, [3, 4], "the newest are kept");
        assert_eq!(d.report.windows_dropped, 3);
        let report = d.flush(Instant::now() + Duration::from_secs(5));
        assert_eq!((report.windows_sent, report.windows_dropped), (0, 5));
        assert!(report.last_error.is_some(), "{report:?}");
    }

    #[test]
    fn delivered_and_refused_windows_are_counted_once_each() {
        let mut d = delivery(backend("200 OK", 3), 10);
        for index in 0..3 {
            d.take(&window(index));
        }
        d.send_spool(None);
        assert!(d.spool.is_empty());
        let report = d.flush(Instant::now());
        assert_eq!((report.windows_sent, report.windows_dropped), (3, 0));

        let mut d = delivery(backend("401 Unauthorized", 2), 10);
        d.take(&window(0));
        d.take(&window(1));
        d.send_spool(None);
        assert!(d.spool.is_empty() && d.retry_at.is_none(), "not retried");
        let report = d.flush(Instant::now());
        assert_eq!((report.windows_sent, report.windows_rejected), (0, 2));
        assert_eq!(report.last_error.as_deref(), Some("HTTP 401: no"));
    }

    #[test]
    fn a_server_error_is_retried_later_with_the_window_kept() {
        let mut d = delivery(backend("503 Service Unavailable", 1), 10);
        d.take(&window(0));
        d.send_spool(None);
        assert_eq!(d.spool.len(), 1, "kept for a retry");
        assert!(d.retry_at.is_some_and(|at| at > Instant::now()));
        assert_eq!(d.report.last_error.as_deref(), Some("HTTP 503: no"));
    }
}
