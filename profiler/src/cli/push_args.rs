//! The push flags (`--otlp`, `--pyroscope` and what they share), and their
//! validation into a [`PushConfig`]: URLs, headers, labels and the CA file
//! are all checked before anything is attached.

use std::{path::PathBuf, time::Duration};

use super::endpoint::{Backend, Endpoint};
use super::parse_duration;

/// Sending windows to a backend.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Push to a backend (continuous profiling)")]
#[command(group = clap::ArgGroup::new("push_target").args(["otlp", "pyroscope"]).multiple(true))]
pub(crate) struct PushArgs {
    /// Send each window to an OpenTelemetry endpoint as OTLP/HTTP profiles
    /// (v1development): to URL/v1development/profiles, or to URL itself
    /// when it has a path. Basic auth from the URL or
    /// BPFPROF_OTLP_BASIC_AUTH=user:password.
    #[arg(long, value_name = "URL")]
    pub(crate) otlp: Option<String>,

    /// Send each window to Grafana Pyroscope's ingest API (pprof), one
    /// request per service. Basic auth from the URL or
    /// BPFPROF_PYROSCOPE_BASIC_AUTH=user:password.
    #[arg(long, value_name = "URL")]
    pub(crate) pyroscope: Option<String>,

    /// An HTTP header for every push request, e.g. X-Scope-OrgID=tenant
    /// (repeatable).
    #[arg(long, value_name = "K=V", requires = "push_target")]
    pub(crate) push_header: Vec<String>,

    /// A label for every pushed profile, e.g. env=prod (repeatable): a
    /// resource attribute in OTLP, a label in Pyroscope.
    #[arg(long, value_name = "K=V", requires = "push_target")]
    pub(crate) label: Vec<String>,

    /// The service every pushed sample belongs to [default: each
    /// process's name].
    #[arg(long, value_name = "NAME", requires = "push_target")]
    pub(crate) service_name: Option<String>,

    /// A PEM file of certificate authorities trusted for https, beside the
    /// system's.
    #[arg(long, value_name = "PEM", requires = "push_target")]
    pub(crate) push_ca_file: Option<PathBuf>,

    /// How long an outage the push spool covers: windows older than this
    /// that are still undelivered are dropped, and counted.
    #[arg(long, value_name = "SECS", value_parser = parse_duration, default_value = "300",
          requires = "push_target")]
    pub(crate) push_spool: Duration,
}

/// Validated push settings.
#[derive(Debug, Clone)]
pub(crate) struct PushConfig {
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) service_name: Option<String>,
    /// The DER certificates of --push-ca-file.
    pub(crate) extra_roots: Vec<Vec<u8>>,
    pub(crate) spool: Duration,
}

/// The largest CA file read: bundles of every public root are ~250 KiB.
const CA_FILE_LIMIT: u64 = 4 << 20;

/// The window length when pushing and none is given: what Pyroscope's and
/// OpenTelemetry's agents send at.
pub(crate) const DEFAULT_PUSH_WINDOW: Duration = Duration::from_secs(15);

/// None when neither --otlp nor --pyroscope was given.
pub(crate) fn push_config(args: PushArgs) -> Result<Option<PushConfig>, String> {
    let mut endpoints = Vec::new();
    for (backend, url) in [
        (Backend::Otlp, &args.otlp),
        (Backend::Pyroscope, &args.pyroscope),
    ] {
        if let Some(url) = url {
            let auth = std::env::var(backend.auth_env()).ok();
            endpoints.push(Endpoint::parse(backend, url, auth.as_deref())?);
        }
    }
    if endpoints.is_empty() {
        return Ok(None);
    }
    let headers = args
        .push_header
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<_, _>>()?;
    let labels = args
        .label
        .iter()
        .map(|l| parse_label(l))
        .collect::<Result<_, _>>()?;
    if let Some(name) = &args.service_name {
        check_label_value("--service-name", name, name)?;
    }
    let extra_roots = match &args.push_ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    if args.push_spool.is_zero() {
        return Err("--push-spool 0: the spool must cover some time, e.g. 300".into());
    }
    Ok(Some(PushConfig {
        endpoints,
        headers,
        labels,
        service_name: args.service_name,
        extra_roots,
        spool: args.push_spool,
    }))
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let bad = |why: &str| format!("--push-header {text:?}: {why}");
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| bad("not K=V (e.g. X-Scope-OrgID=tenant)"))?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(bad("the name must be an HTTP token (letters, digits, -_.)"));
    }
    let value = value.trim();
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(bad("the value holds a control character"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// RFC 9110's token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Keys as Prometheus and Pyroscope take them (dots too, as OpenTelemetry
/// writes them); values without the characters Pyroscope's `name{k=v,...}`
/// gives meaning to.
fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("--label {text:?}: not K=V (e.g. env=prod)"))?;
    let key_ok = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !key_ok {
        return Err(format!(
            "--label {text:?}: the key must be letters, digits, _ and . (not starting with a digit)"
        ));
    }
    if matches!(key, "service.name" | "host.name") {
        return Err(format!(
            "--label {text:?}: bpfprof sets {key} itself (name the service with --service-name)"
        ));
    }
    check_label_value("--label", text, value)?;
    Ok((key.to_string(), value.to_string()))
}

fn check_label_value(flag: &str, text: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{flag} {text:?}: the value is empty"));
    }
    if value
        .chars()
        .any(|c| c.is_control() || ",{}=\"".contains(c))
    {
        return Err(format!(
            "{flag} {text:?}: the value may not hold control characters or any of , {{ }} = \""
        ));
    }
    Ok(())
}

fn read_ca_file(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    use crate::untrusted_file::{self, NotRead};
    let bad = |why: String| format!("--push-ca-file {}: {why}", path.display());
    let file = untrusted_file::open(path, true).map_err(|e| bad(e.to_string()))?;
    let pem = untrusted_file::read_whole(file, CA_FILE_LIMIT).map_err(|e| match e {
        NotRead::Io(e) => bad(e.to_string()),
        NotRead::NotRegular(kind) => bad(format!("is {}", untrusted_file::describe(kind))),
        NotRead::TooLarge(_) | NotRead::Grew => bad(format!("larger than {CA_FILE_LIMIT} bytes")),
    })?;
    let certs = pem_certificates(&pem);
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The DER certificates of a PEM file.
fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert.der().to_vec()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_tokens_and_values_without_line_breaks() {
        assert_eq!(
            parse_header("X-Scope-OrgID = tenant 1").unwrap(),
            ("X-Scope-OrgID".into(), "tenant 1".into())
        );
        assert_eq!(
            parse_header("Authorization=Bearer a=b").unwrap().1,
            "Bearer a=b"
        );
        for bad in ["NoEquals", "=v", "Bad Name=v", "X=a\r\nInjected: 1"] {
            let e = parse_header(bad).unwrap_err();
            assert!(e.starts_with("--push-header "), "{bad}: {e}");
        }
    }

    #[test]
    fn labels_have_prometheus_keys_and_values_pyroscope_can_carry() {
        assert_eq!(
            parse_label("env=prod").unwrap(),
            ("env".into(), "prod".into())
        );
        assert_eq!(parse_label("k8s.cluster=a b").unwrap().0, "k8s.cluster");
        for bad in [
            "env",
            "1env=x",
            "bad key=v",
            "env=",
            "env=a,b",
            "env=a}",
            "service.name=x",
        ] {
            let e = parse_label(bad).unwrap_err();
            assert!(e.starts_with("--label ") && !e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let e = read_ca_file(std::path::Path::new("/dev/null")).unwrap_err();
        assert!(e.starts_with("--push-ca-file /dev/null: is a"), "{e}");
        let e = read_ca_file(std::path::Path::new("/etc/hostname")).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
    }
}
