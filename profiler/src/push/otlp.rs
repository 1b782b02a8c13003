//! OTLP profiles encoding (helper fills this in).
