//! Push: sends each closed window to the backends named on the command
//! line (`--otlp`, `--pyroscope`). The capture thread turns a window into
//! a [`PushWindow`] (`build`: per service, its pprof message and its
//! processes' attributes, from `process_attributes`); each backend has a
//! thread of its own (`deliver`) that encodes it (`otlp`, `pyroscope`),
//! spools it and sends it (`http`) with retries, so a slow or absent
//! backend never slows the capture. `endpoint` checks the URLs.

mod build;
mod deliver;
pub(crate) mod http;
pub(crate) mod otlp;
mod process_attributes;
mod pyroscope;
pub(crate) mod window;

use std::{
    sync::{Arc, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result};

use self::{
    deliver::{Delivery, Message},
    http::Client,
    process_attributes::ProcessCache,
};
use crate::{
    cli::{Backend, Endpoint, PushConfig},
    meta::{PushReport, RunMeta},
    profile::Profile,
};

/// How long the backends get at exit for what is left.
const FLUSH_DEADLINE: Duration = Duration::from_secs(10);

/// A backend's report, before anything was sent.
fn new_report(endpoint: &Endpoint) -> PushReport {
    PushReport {
        backend: endpoint.backend.name().into(),
        url: endpoint.url.to_string(),
        windows_sent: 0,
        windows_dropped: 0,
        windows_rejected: 0,
        last_error: None,
    }
}

/// OTLP/HTTP: the whole window in one request, marked with the
/// development version of the profiles schema it is encoded in.
fn otlp_requests(endpoint: &Endpoint, window: &window::PushWindow) -> Vec<http::Request> {
    if window.services.is_empty() {
        return Vec::new();
    }
    vec![http::Request {
        url: endpoint.url.to_string(),
        content_type: "application/x-protobuf",
        headers: vec![(
            "OTLP-Profiles-Development-Version",
            otlp::DEVELOPMENT_VERSION.into(),
        )],
        body: otlp::encode(window),
    }]
}

/// The push threads, and what the capture thread keeps to build windows.
pub(crate) struct Pusher {
    threads: Vec<(mpsc::Sender<Message>, JoinHandle<PushReport>)>,
    settings: PushConfig,
    processes: ProcessCache,
    next_index: u64,
}

impl Pusher {
    /// Starts a thread per backend; the spool of each holds the windows
    /// of `--push-spool` (and the one being sent).
    pub(crate) fn start(settings: &PushConfig, window: Duration) -> Result<Pusher> {
        let capacity =
            (settings.spool.as_secs_f64() / window.as_secs_f64().max(0.001)).ceil() as usize + 1;
        let mut threads = Vec::new();
        for endpoint in &settings.endpoints {
            let client = Client::new(
                &settings.extra_roots,
                settings.headers.clone(),
                endpoint.authorization.clone(),
            );
            let encode = match endpoint.backend {
                Backend::Otlp => otlp_requests,
                Backend::Pyroscope => pyroscope::requests,
            };
            let delivery = Delivery::new(endpoint.clone(), client, encode, capacity);
            let (sender, receiver) = mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("push-{}", endpoint.backend.name()))
                .spawn(move || delivery.run(receiver))
                .with_context(|| format!("starting the thread for {}", endpoint.describe()))?;
            threads.push((sender, thread));
        }
        Ok(Pusher {
            threads,
            settings: settings.clone(),
            processes: ProcessCache::default(),
            next_index: 0,
        })
    }

    /// Hands a closed window to every backend.
    pub(crate) fn push(
        &mut self,
        profile: &Profile,
        meta: &RunMeta,
        started: SystemTime,
        off_cpu: bool,
    ) {
        let window = build::window(
            profile,
            meta,
            build::WindowTimes {
                index: self.next_index,
                started,
                off_cpu,
            },
            &self.settings,
            &mut self.processes,
        );
        self.next_index += 1;
        let window = Arc::new(window);
        for (sender, _) in &self.threads {
            // A thread that is gone has said why; its report says the rest.
            let _ = sender.send(Message::Window(Arc::clone(&window)));
        }
    }

    /// Lets every backend send what is left, within the flush deadline,
    /// and returns what each was sent.
    pub(crate) fn finish(self) -> Vec<PushReport> {
        let deadline = Instant::now() + FLUSH_DEADLINE;
        for (sender, _) in &self.threads {
            let _ = sender.send(Message::Finish(deadline));
        }
        self.threads
            .into_iter()
            .zip(&self.settings.endpoints)
            .map(|((_, thread), endpoint)| {
                thread.join().unwrap_or_else(|_| {
                    let mut report = new_report(endpoint);
                    report.last_error = Some("its push thread failed".into());
                    report
                })
            })
            .collect()
    }
}
