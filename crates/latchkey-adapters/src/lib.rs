//! placeholder during scaffolding
