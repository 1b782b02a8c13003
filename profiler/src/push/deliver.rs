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
