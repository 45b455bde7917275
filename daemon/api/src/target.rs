//! What a call names: `name` (the live version), `name@3` (version 3) or
//! `name@prod` (whatever the alias points at).

use crate::error::{ApiError, ErrorCode};
use crate::manifest::validate_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Live(String),
    Version(String, u32),
    Alias(String, String),
}

impl Target {
    /// `name`, `name@version` or `name@alias`.
    pub fn parse(target: &str) -> Result<Target, ApiError> {
        let (name, parsed) = match target.split_once('@') {
            None => (target, Target::Live(target.to_owned())),
            Some((name, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                let version = v.parse::<u32>().map_err(|_| {
                    ApiError::new(
                        ErrorCode::VersionNotFound,
                        format!("{name} has no version {v}"),
                        format!("`hearth versions {name}` lists its versions"),
                    )
                    .function(name, None)
                })?;
                (name, Target::Version(name.to_owned(), version))
            }
            Some((name, alias)) => {
                if validate_name(alias).is_err() {
                    return Err(ApiError::alias_not_found(name, alias));
                }
                (name, Target::Alias(name.to_owned(), alias.to_owned()))
            }
        };
        if validate_name(name).is_err() {
            return Err(ApiError::function_not_found(name));
        }
        Ok(parsed)
    }

    /// The function named.
    pub fn function(&self) -> &str {
        match self {
            Target::Live(f) | Target::Version(f, _) | Target::Alias(f, _) => f,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Live(name) => write!(f, "{name}"),
            Target::Version(name, v) => write!(f, "{name}@{v}"),
            Target::Alias(name, alias) => write!(f, "{name}@{alias}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("hello").expect("ok"),
            Target::Live("hello".into())
        );
        assert_eq!(
            Target::parse("hello@3").expect("ok"),
            Target::Version("hello".into(), 3)
        );
        assert_eq!(
            Target::parse("hello@prod").expect("ok"),
            Target::Alias("hello".into(), "prod".into())
        );
        assert_eq!(Target::parse("hello@X!").expect_err("bad").status, 404);
        assert_eq!(
            Target::parse("Hello").expect_err("bad").detail.code,
            "function_not_found"
        );
    }
}
