//! A version's contract with its callers, from its hearth.toml: the
//! schema its input must match (checked before the function runs, for
//! every caller), the schema of its output (checked as
//! `output_validation` says), and its own error codes (a raised code
//! becomes its declared status). Compiled once per version, when its pool
//! is made.

use hearth_api::manifest::Manifest;
use hearth_api::metadata::{self, Errors, OutputValidation};
use hearth_api::{ApiError, ErrorCode};
use tracing::warn;

use crate::pool::FunctionError;

/// What a version promises; `Contract::default()` checks nothing.
#[derive(Default)]
pub struct Contract {
    input: Option<jsonschema::Validator>,
    output: Option<jsonschema::Validator>,
    pub output_validation: OutputValidation,
    pub errors: Errors,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("input", &self.input.is_some())
            .field("output", &self.output.is_some())
            .field("output_validation", &self.output_validation)
            .field("errors", &self.errors.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Contract {
    /// The contract of a stored version. Its schemas were checked at
    /// deploy; one that no longer compiles (a newer hearth reading an
    /// older version) is not enforced, and says so in the log.
    pub fn of(label: &str, manifest: &Manifest) -> Contract {
        let compile = |what: &str, schema: Option<&serde_json::Value>| {
            schema.and_then(|s| match metadata::compile(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    warn!(
                        function = label,
                        "the [{what}] schema {e}; it is not checked"
                    );
                    None
                }
            })
        };
        let output_validation = manifest.output_validation;
        Contract {
            input: compile("input", manifest.input.as_ref()),
            output: match output_validation {
                OutputValidation::Off => None,
                _ => compile("output", manifest.output.as_ref()),
            },
            output_validation,
            errors: manifest.errors.clone(),
        }
    }

    pub fn checks_input(&self) -> bool {
        self.input.is_some()
    }

    pub fn checks_output(&self) -> bool {
        self.output.is_some()
    }

    /// A 400 `invalid_input` listing each failure, if `event` does not
    /// match the input schema.
    pub fn check_input(
        &self,
        function: &str,
        version: u32,
        event: &rmpv::Value,
    ) -> Result<(), ApiError> {
        let Some(validator) = &self.input else {
            return Ok(());
        };
        let json = hearth_protocol::value_to_json(event);
        let failures = metadata::failures(validator, &json);
        if failures.is_empty() {
            return Ok(());
        }
        let first = &failures[0];
        let at = if first.pointer.is_empty() {
            "the event".to_owned()
        } else {
            format!("the event at {}", first.pointer)
        };
        let more = match failures.len() {
            1 => String::new(),
            n => format!(" (and {} more: see error.failures)", n - 1),
        };
        let mut e = ApiError::new(
            ErrorCode::InvalidInput,
            format!(
                "{at} does not match {function}'s input schema: {}{more}",
                first.message
            ),
            format!("send an event that matches the [input] schema of {function}@{version} (`hearth docs {function}` shows it); the function was not called"),
        )
        .function(function, Some(version));
        e.detail.failures = failures;
        Err(e)
    }

    /// The output's failures against the output schema (empty when it
    /// matches or is not checked).
    pub fn output_failures(&self, value: &serde_json::Value) -> Vec<metadata::SchemaFailure> {
        match &self.output {
            Some(v) => metadata::failures(v, value),
            None => Vec::new(),
        }
    }

    /// A 500 `invalid_output` for an answer that failed the output schema
    /// under `enforce`.
    pub fn invalid_output(
        function: &str,
        version: u32,
        failures: Vec<metadata::SchemaFailure>,
    ) -> ApiError {
        let first = failures
            .first()
            .map(|f| {
                let at = if f.pointer.is_empty() {
                    "/"
                } else {
                    &f.pointer
                };
                format!("at {at}: {}", f.message)
            })
            .unwrap_or_default();
        let mut e = ApiError::new(
            ErrorCode::InvalidOutput,
            format!("{function}@{version} answered with a value that does not match its [output] schema, {first}"),
            "the function's answer was not sent (output_validation = \"enforce\"); fix the function or its [output] schema, or set output_validation = \"log\" to send such answers and log them",
        )
        .function(function, Some(version));
        e.detail.failures = failures;
        e
    }

    /// The function's own error as its caller gets it: a declared code
    /// with its status, an undeclared one as a 500 that says so, any
    /// other error as `function_error`.
    pub fn function_error(&self, function: &str, version: u32, error: FunctionError) -> ApiError {
        let Some(code) = error.code.clone() else {
            return crate::error::function_error(function, version, error);
        };
        match self.errors.get(&code) {
            Some(declared) => {
                let message = if error.message.trim().is_empty() {
                    declared.message.clone()
                } else {
                    error.message
                };
                let retry = if declared.retryable {
                    "the call may be tried again"
                } else {
                    "do not retry the same call"
                };
                let mut e = ApiError::new(
                    ErrorCode::FunctionError,
                    message,
                    format!("{}: {} ({retry})", code, declared.message),
                )
                .with_status(declared.status)
                .function(function, Some(version));
                e.detail.code = code;
                e.detail.retryable = Some(declared.retryable);
                e
            }
            None => {
                let declared: Vec<&str> = self.errors.keys().map(String::as_str).collect();
                let known = if declared.is_empty() {
                    "it declares none".to_owned()
                } else {
                    format!("it declares {}", declared.join(", "))
                };
                ApiError::new(
                    ErrorCode::UndeclaredError,
                    format!(
                        "{function}@{version} raised the error code {code}, which its hearth.toml does not declare ({known}): {}",
                        error.message
                    ),
                    format!("declare it in the function's hearth.toml, [errors.{code}] with status and message, or raise a declared code"),
                )
                .function(function, Some(version))
                .details(error.kind, error.message, error.traceback)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        hearth_api::manifest::parse(&format!(
            "name='p'\nruntime='python'\nentry='main.h'\n{extra}"
        ))
        .expect("manifest")
    }

    fn raised(code: &str, message: &str) -> FunctionError {
        FunctionError {
            kind: "Error".into(),
            message: message.into(),
            traceback: "Traceback ...".into(),
            code: Some(code.into()),
        }
    }

    #[test]
    fn declared_codes_get_their_status() {
        let c = Contract::of(
            "p@1",
            &manifest("[errors.NOT_FOUND]\nstatus = 404\nmessage = 'no such program'\n"),
        );
        let e = c.function_error("p", 1, raised("NOT_FOUND", "no program 42"));
        assert_eq!((e.status, e.detail.code.as_str()), (404, "NOT_FOUND"));
        assert_eq!(e.detail.message, "no program 42");
        assert_eq!(e.detail.retryable, Some(false));
        assert!(
            e.detail.details.is_none(),
            "no traceback for a declared error"
        );
        let e = c.function_error("p", 1, raised("GONE", "x"));
        assert_eq!((e.status, e.code), (500, ErrorCode::UndeclaredError));
        assert!(
            e.detail.message.contains("does not declare"),
            "{}",
            e.detail.message
        );
    }

    #[test]
    fn input_is_checked() {
        let c = Contract::of(
            "p@1",
            &manifest("[input]\ntype='object'\nrequired=['id']\nproperties.id={type='integer'}\n"),
        );
        assert!(c.checks_input());
        let ok = rmpv::Value::Map(vec![("id".into(), 3.into())]);
        assert!(c.check_input("p", 1, &ok).is_ok());
        let bad = rmpv::Value::Map(vec![("id".into(), "x".into())]);
        let e = c.check_input("p", 1, &bad).expect_err("invalid");
        assert_eq!((e.status, e.code), (400, ErrorCode::InvalidInput));
        assert_eq!(e.detail.failures[0].pointer, "/id");
        assert!(Contract::default().check_input("p", 1, &bad).is_ok());
    }
}
