//! The Campus API client generated at build time from `openapi/openapi.json` by progenitor
//! (see `build.rs`): `Client`, one builder method per operation (named by its
//! `operationId`), and the spec's schemas in `types`.

include!(concat!(env!("OUT_DIR"), "/campus_client.rs"));
