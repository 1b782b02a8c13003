//! Push: sends each closed window to the backends named on the command
//! line (`--otlp`, `--pyroscope`), from threads of their own so delivery
//! never slows the capture.

pub(crate) mod otlp;
pub(crate) mod window;
