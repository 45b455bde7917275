//! Durations in the configuration file: strings such as `"30s"`, `"500ms"`
//! or `"2m"` (humantime), written back the same way.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d).map_err(|_| {
        serde::de::Error::custom("a duration must be a string such as \"30s\", \"500ms\" or \"2m\"")
    })?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "\"{text}\" is not a duration ({e}); write for example \"30s\", \"500ms\" or \"2m\""
        ))
    })
}
