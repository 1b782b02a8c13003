//! OTLP profiles encoding (stub until the encoder lands).

use super::window::PushWindow;

/// The profiles development version of opentelemetry-proto 1.10.0's
/// schema, sent as OTLP-Profiles-Development-Version.
pub(crate) const DEVELOPMENT_VERSION: &str = "1";

pub(crate) fn encode(_window: &PushWindow) -> Vec<u8> {
    Vec::new()
}
