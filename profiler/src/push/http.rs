//! One HTTP POST to a backend, over rustls with the system's roots (plus
//! --push-ca-file), and what its answer means for the window it carried:
//! delivered, refused for good (a 4xx), or to be tried again.

use std::time::Duration;

use ureq::{
    Agent,
    tls::{Certificate, RootCerts, TlsConfig},
};

/// How long one request may take, connecting included: long enough for a
/// large window over a slow link, short enough that an exit flush ends.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a refusal's body read, for its first line.
const BODY_LIMIT: u64 = 4096;

/// A request to send: where, what, and the headers of its protocol.
pub(crate) struct Request {
    pub(crate) url: String,
    pub(crate) content_type: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

/// What became of a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered,
    /// A 4xx other than 408 and 429: the same request will never be taken.
    Refused {
        status: u16,
        first_line: String,
    },
    /// No answer, or one that says to try later (5xx, 408, 429).
    Failed(String),
}

/// A backend's connection settings, reused for every request.
pub(crate) struct Client {
    agent: Agent,
    /// --push-header, then the backend's Authorization.
    headers: Vec<(String, String)>,
}

impl Client {
    pub(crate) fn new(
        extra_roots: &[Vec<u8>],
        mut headers: Vec<(String, String)>,
        authorization: Option<String>,
    ) -> Client {
        let tls = TlsConfig::builder().root_certs(roots(extra_roots)).build();
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .user_agent(concat!("bpfprof/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build()
            .into();
        if let Some(auth) = authorization {
            headers.push(("Authorization".into(), auth));
        }
        Client { agent, headers }
    }

    pub(crate) fn post(&self, request: &Request) -> Outcome {
        let mut builder = self
            .agent
            .post(&request.url)
            .header("Content-Type", request.content_type);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let mut response = match builder.send(&request.body[..]) {
            Ok(response) => response,
            Err(e) => return Outcome::Failed(describe_error(&e)),
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Outcome::Delivered;
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .unwrap_or_default();
        let first_line = first_line(&body);
        match status {
            408 | 429 | 500.. => Outcome::Failed(format!("HTTP {status}: {first_line}")),
            _ => Outcome::Refused { status, first_line },
        }
    }
}

/// The system's roots and the extra ones; Mozilla's (built in) where the
/// system has none and none were given.
fn roots(extra_roots: &[Vec<u8>]) -> RootCerts {
    let mut certs: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .into_iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    certs.extend(
        extra_roots
            .iter()
            .map(|der| Certificate::from_der(der).to_owned()),
    );
    if certs.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&certs)
    }
}

/// A refusal's first line, printable and bounded.
fn first_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let line: String = line.chars().filter(|c| !c.is_control()).take(200).collect();
    if line.is_empty() {
        "(no body)".into()
    } else {
        line
    }
}

/// An error as one line, with the cause rustls or the socket gave.
fn describe_error(error: &ureq::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_shows_its_first_nonempty_line_only() {
        assert_eq!(
            first_line(b"\n invalid token \nsecond line"),
            "invalid token"
        );
        assert_eq!(first_line(b""), "(no body)");
        assert_eq!(first_line(b"a\x1b[31mb"), "a[31mb");
    }
}
