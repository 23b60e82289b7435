//! Test harness for latchkey: per-test databases, the store conformance suite, and
//! (soon) `TestApp`, the real server on an ephemeral port.
