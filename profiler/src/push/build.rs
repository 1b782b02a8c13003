//! From a closed window's profile to a [`PushWindow`]: its processes
//! grouped by service, each service's samples as a pprof message, and
//! each process's attributes.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{SystemTime, UNIX_EPOCH},
};

use super::{
    process_attributes::ProcessCache,
    window::{PushWindow, ServiceWindow},
};
use crate::{cli::PushConfig, meta::RunMeta, output::pprof, profile::Profile};

/// Which window this is, and what it recorded.
pub(super) struct WindowTimes {
    pub(super) index: u64,
    pub(super) started: SystemTime,
    pub(super) off_cpu: bool,
}

pub(super) fn window(
    profile: &Profile,
    meta: &RunMeta,
    times: WindowTimes,
    settings: &PushConfig,
    cache: &mut ProcessCache,
) -> PushWindow {
    let mut by_service: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for (&tgid, info) in &profile.processes {
        let service = settings
            .service_name
            .clone()
            .unwrap_or_else(|| info.name.clone());
        by_service.entry(service).or_default().insert(tgid);
    }
    let start_ns = times
        .started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    cache.start_window();
    let services = by_service
        .into_iter()
        .filter_map(|(name, tgids)| {
            let message = pprof::build_for(profile, meta, times.off_cpu, start_ns, &|t| {
                tgids.contains(&t)
            });
            if message.sample.is_empty() {
                return None;
            }
            let processes = tgids
                .iter()
                .map(|&tgid| (tgid, cache.attributes(tgid, profile.process_name(tgid))))
                .collect();
            Some(ServiceWindow {
                name,
                pprof: message,
                processes,
            })
        })
        .collect();
    PushWindow {
        index: times.index,
        start: times.started,
        duration_ns: (meta.duration_secs * 1e9) as u64,
        host_name: meta.hostname.clone(),
        labels: settings.labels.clone(),
        freq_hz: meta.freq_hz,
        off_cpu: times.off_cpu,
        services,
    }
}
