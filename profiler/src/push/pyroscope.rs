//! Pyroscope's ingest API: one request per service and window, the
//! service's pprof (gzipped) as the body and the window's times, labels
//! and sampling rate in the query.

use std::time::UNIX_EPOCH;

use super::{http::Request, window::PushWindow};
use crate::{cli::Endpoint, output::pprof};

/// One request per service with samples.
pub(crate) fn requests(endpoint: &Endpoint, window: &PushWindow) -> Vec<Request> {
    let from = window
        .start
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let until = from + (window.start_subsec_ns() + window.duration_ns) / 1_000_000_000;
    let mut labels = vec![format!("hostname={}", label_value(&window.host_name))];
    labels.extend(window.labels.iter().map(|(k, v)| format!("{k}={v}")));
    let labels = labels.join(",");
    window
        .services
        .iter()
        .map(|service| {
            let mut url = endpoint.url.clone();
            url.query_pairs_mut()
                .append_pair(
                    "name",
                    &format!("{}{{{labels}}}", label_value(&service.name)),
                )
                .append_pair("from", &from.to_string())
                .append_pair("until", &until.to_string())
                .append_pair("format", "pprof")
                .append_pair("sampleRate", &window.freq_hz.to_string())
                .append_pair("spyName", "bpfprof");
            let mut message = service.pprof.clone();
            drop_thread_ids(&mut message);
            let mut body = Vec::new();
            // Writing into memory cannot fail.
            let _ = pprof::write(&mut body, &message);
            Request {
                url: url.to_string(),
                content_type: "application/octet-stream",
                headers: Vec::new(),
                body,
            }
        })
        .collect()
}

/// Pyroscope makes a series of every distinct label set: thread ids would
/// make one per thread (thread names stay, far fewer).
fn drop_thread_ids(message: &mut pprof::proto::Profile) {
    let Some(tid) = message.string_table.iter().position(|s| s == "tid") else {
        return;
    };
    for sample in &mut message.sample {
        sample.label.retain(|l| l.key != tid as i64);
    }
}

/// A name or value as Pyroscope's `app{k=v,...}` can carry it.
fn label_value(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || ",{}=\"".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::label_value;

    #[test]
    fn names_lose_the_characters_of_the_label_syntax() {
        assert_eq!(label_value("kworker/0:1"), "kworker/0:1");
        assert_eq!(label_value("a{b}=c,d\"\n"), "a_b__c_d__");
    }
}
